"""Continuous-force cart-pole balancing of mbrl-lib, implemented here as a ``gymnasium.Env``.

Source: facebookresearch/mbrl-lib, ``mbrl/env/cartpole_continuous.py`` (``CartPoleEnv``), with
termination ``mbrl/env/termination_fns.py:cartpole`` and reward ``mbrl/env/reward_fns.py:cartpole``;
mbrl-lib's PETS cart-pole example runs trials of 200 steps (the registry's time limit). It is
Gymnasium's CartPole-v1 with the two discrete pushes replaced by a continuous force:

- physics (Barto, Sutton & Anderson 1983, as in CartPole-v1): gravity ``g = 9.8``, cart mass
  ``1.0`` kg, pole mass ``0.1`` kg, pole half-length ``0.5`` m, no friction, ``theta = 0`` upright
  (``theta > 0``: leaning towards ``+x``)::

      temp     = (f + m_p l th_d^2 sin th) / (m_c + m_p)
      theta_dd = (g sin th - cos th temp) / (l (4/3 - m_p cos^2 th / (m_c + m_p)))
      x_dd     = temp - m_p l theta_dd cos th / (m_c + m_p)

  integrated with one *explicit* Euler step of ``tau = 0.02`` s per env step (positions advance with
  the pre-step velocities: ``x' = x + tau x_d``, ``x_d' = x_d + tau x_dd``, same for ``theta``);
- action ``[a]``, ``Box(-1, 1, (1,), float32)``; force ``f = 10 N * a``. Like mbrl-lib, the action is
  *not* clipped: an out-of-range action scales the force linearly (the env computes in float64 from
  the float32 action; mbrl-lib forms ``a * 10`` in float32 first, a difference of at most one
  float32 rounding of the force);
- observation = state ``[x, x_dot, theta, theta_dot]`` (float64, as mbrl-lib returns it; mbrl-lib
  declares a float32 space, ours says float64);
- reset: every state entry ``U(-0.05, 0.05)``, drawn from the env's own ``np_random``;
- termination on the post-step state: ``|x| > 2.4`` or ``|theta| > 12 deg`` (``0.20944`` rad), strict;
- reward: ``1.0`` on every step *including* the terminating one (mbrl-lib's env, like CartPole-v1;
  steps taken after termination pay ``0.0`` with a warning, which the driver never takes);
- dynamics: the same Euler step in torch (:func:`dynamics`), the same formula the env steps with.

One deliberate choice: mbrl-lib's ``reward_fns.cartpole`` is ``1 - terminated`` (0 on the
terminating step), which disagrees with its own env on that one step. Our contract is "reward_fn
equals env.step", so :func:`reward_fn` follows the env (returns stay comparable with mbrl-lib's
reported ones). For a planner the only difference is that a sequence terminating on the last planned
step scores like one that survives the horizon; any earlier termination ranks the same.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.classic.cartpole import (
    FORCE_MAG,
    THETA_THRESHOLD,
    X_THRESHOLD,
    euler_step,
    reward_fn,
    termination_fn,
)

Tensor = torch.Tensor
__all__ = ["CartPoleContinuousEnv", "dynamics", "make_env", "reward_fn", "termination_fn"]

INIT_HIGH = 0.05


def dynamics(obs: Tensor, act: Tensor) -> Tensor:
    """``[..., 4], [..., 1] -> [..., 4]``: the env's Euler step in torch (force ``10 * a``)."""
    x, x_dot, theta, theta_dot = obs.unbind(-1)
    force = FORCE_MAG * act[..., 0]
    return torch.stack(euler_step(x, x_dot, theta, theta_dot, force, torch.sin, torch.cos), -1)


class CartPoleContinuousEnv(gym.Env[np.ndarray, np.ndarray]):
    """mbrl-lib's continuous cart-pole; see the module docstring for the model and conventions."""

    metadata = {"render_modes": []}  # noqa: RUF012  (Gymnasium's class attribute)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        # mbrl-lib's bounds: twice the termination thresholds, so a terminal state is inside
        high = np.array(
            [
                2 * X_THRESHOLD,
                np.finfo(np.float32).max,
                2 * THETA_THRESHOLD,
                np.finfo(np.float32).max,
            ],
            np.float64,
        )
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.state: np.ndarray | None = None
        self._steps_beyond_terminated: int | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-INIT_HIGH, INIT_HIGH, size=4)
        self._steps_beyond_terminated = None
        return self.state.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.state is not None, "call reset() before step()"
        a = np.asarray(action, np.float64).reshape(-1)
        if a.size != 1:
            raise ValueError(f"expected one action value, got shape {np.shape(action)}")
        x, x_dot, theta, theta_dot = (float(v) for v in self.state)
        force = FORCE_MAG * float(a[0])
        x, x_dot, theta, theta_dot = euler_step(
            x, x_dot, theta, theta_dot, force, math.sin, math.cos
        )
        self.state = np.array([x, x_dot, theta, theta_dot], np.float64)
        terminated = bool(
            x < -X_THRESHOLD
            or x > X_THRESHOLD
            or theta < -THETA_THRESHOLD
            or theta > THETA_THRESHOLD
        )
        reward = 1.0
        if terminated:
            if self._steps_beyond_terminated is None:
                self._steps_beyond_terminated = 0  # the pole just fell: this step still pays 1
            else:
                if self._steps_beyond_terminated == 0:
                    gym.logger.warn(
                        "step() called after the episode terminated; call reset() first "
                        "(further steps pay 0)"
                    )
                self._steps_beyond_terminated += 1
                reward = 0.0
        return self.state.copy(), reward, terminated, False, {}


def make_env(**kwargs: Any) -> gym.Env:
    """A :class:`CartPoleContinuousEnv` (the registry adds the 200-step time limit)."""
    return CartPoleContinuousEnv(**kwargs)
