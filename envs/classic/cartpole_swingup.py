"""Continuous cart-pole swing-up of PILCO and PETS, implemented here as a ``gymnasium.Env``.

Physics are PILCO's cart-pole (Deisenroth & Rasmussen, "PILCO: A Model-Based and Data-Efficient
Approach to Policy Search", ICML 2011; ``scenarios/cartPole/dynamics_cp.m``): a cart of mass
``M = 0.5`` kg on a track with viscous friction ``b = 0.1`` N s/m, carrying a uniform rod (pole) of
mass ``m = 0.5`` kg and length ``l = 0.6`` m (PETS's length; PILCO uses 0.5) hinged on the cart,
gravity ``g = 9.82``, horizontal force ``f = 10 N * clip(a, -1, 1)``. With ``theta = 0`` hanging
down (the PILCO convention) and the tip at ``(x + l sin theta, -l cos theta)``::

    x_dd     = (2 m l th_d^2 sin th + 3 m g sin th cos th + 4 f - 4 b x_d) / (4 (M + m) - 3 m cos^2 th)
    theta_dd = (-3 m l th_d^2 sin th cos th - 6 (M + m) g sin th - 6 (f - b x_d) cos th)
               / (4 l (M + m) - 3 m l cos^2 th)

The force is held for ``dt = 0.05`` s (PETS's control period) and the ODE integrated with
:data:`SUBSTEPS` classic RK4 substeps by :func:`step_state`, a batched torch function used by both
the env (float64) and :func:`dynamics`, so the two agree by construction.

- observation = state = ``[x, x_dot, theta, theta_dot]`` (float64), ``theta`` not wrapped
  (``pi`` = upright; functions of the angle use ``sin``/``cos``);
- action ``[a]`` in ``[-1, 1]`` (clipped inside the step and the reward);
- reward (PETS, Chua et al., "Deep Reinforcement Learning in a Handful of Trials using
  Probabilistic Dynamics Models", NeurIPS 2018, ``cartpole`` config) on the post-step state:
  ``exp(-|tip - (0, l)|^2 / l^2) - 0.01 a^2``, at most 1 per step (returns out of 200);
- start: ``N(0, 0.1^2 I)`` around the hanging rest state (PILCO's ``S0`` and PETS's reset noise);
- never terminates; episodes last 200 steps (10 s).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.spec import SaturatingCost

Tensor = torch.Tensor

CART_MASS = 0.5
POLE_MASS = 0.5
POLE_LENGTH = 0.6
FRICTION = 0.1
GRAVITY = 9.82
MAX_FORCE = 10.0
DT = 0.05
SUBSTEPS = 4
"""RK4 substeps per env step (``h = 0.0125`` s): against an adaptive solver at 1e-12 tolerance the
per-step state error is < 2e-5 for ``|theta_dot| <= 10`` rad/s (3e-4 with 2 substeps)."""
ACTION_COST = 0.01
INIT_STD = 0.1
UPRIGHT = (0.0, 0.0, math.pi, 0.0)


def _derivative(s: Tensor, force: Tensor) -> Tensor:
    """``[..., 4], [...] -> [..., 4]``: ``d/dt [x, x_dot, theta, theta_dot]``."""
    m, mc, ln, b, g = POLE_MASS, CART_MASS, POLE_LENGTH, FRICTION, GRAVITY
    _, x_dot, theta, theta_dot = s.unbind(-1)
    sin, cos = torch.sin(theta), torch.cos(theta)
    den = 4.0 * (mc + m) - 3.0 * m * cos**2
    x_dd = (
        2.0 * m * ln * theta_dot**2 * sin + 3.0 * m * g * sin * cos + 4.0 * force - 4.0 * b * x_dot
    ) / den
    theta_dd = (
        -3.0 * m * ln * theta_dot**2 * sin * cos
        - 6.0 * (mc + m) * g * sin
        - 6.0 * (force - b * x_dot) * cos
    ) / (ln * den)
    return torch.stack([x_dot, x_dd, theta_dot, theta_dd], dim=-1)


def step_state(state: Tensor, act: Tensor) -> Tensor:
    """``[..., 4], [..., 1] -> [..., 4]``: one env step (zero-order-hold force, RK4 substeps)."""
    force = MAX_FORCE * act[..., 0].clamp(-1.0, 1.0)
    h = DT / SUBSTEPS
    s = state
    for _ in range(SUBSTEPS):
        k1 = _derivative(s, force)
        k2 = _derivative(s + 0.5 * h * k1, force)
        k3 = _derivative(s + 0.5 * h * k2, force)
        k4 = _derivative(s + h * k3, force)
        s = s + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return s


def dynamics(obs: Tensor, act: Tensor) -> Tensor:
    """``[..., 4], [..., 1] -> [..., 4]``: the env's transition (same code as the env)."""
    return step_state(obs, act)


def tip_position(obs: Tensor) -> Tensor:
    """``[..., 4] -> [..., 2]``: pole tip ``(x + l sin theta, -l cos theta)``."""
    theta = obs[..., 2]
    return torch.stack(
        [obs[..., 0] + POLE_LENGTH * torch.sin(theta), -POLE_LENGTH * torch.cos(theta)], dim=-1
    )


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]``: ``exp(-|tip' - (0, l)|^2 / l^2) - 0.01 clip(a)^2`` (PETS's swing-up reward)."""
    tip = tip_position(next_obs)
    dist2 = tip[..., 0] ** 2 + (tip[..., 1] - POLE_LENGTH) ** 2
    a = act[..., 0].clamp(-1.0, 1.0)
    return torch.exp(-dist2 / POLE_LENGTH**2) - ACTION_COST * a**2


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]`` all False: the swing-up never terminates."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


class CartPoleSwingUpEnv(gym.Env[np.ndarray, np.ndarray]):
    """PILCO/PETS cart-pole swing-up; see the module docstring for the model and reward."""

    metadata = {"render_modes": []}  # noqa: RUF012  (Gymnasium's class attribute)

    def __init__(self, init_std: float = INIT_STD, render_mode: str | None = None) -> None:
        self.init_std = float(init_std)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.state: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = self.init_std * self.np_random.standard_normal(4)
        return self.state.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.state is not None, "call reset() before step()"
        s = torch.as_tensor(self.state, dtype=torch.float64)
        a = torch.as_tensor(np.asarray(action, np.float64).reshape(1))
        with torch.no_grad():
            ns = step_state(s, a)
            reward = float(reward_fn(s, a, ns))
        self.state = ns.numpy().copy()
        return self.state.copy(), reward, False, False, {}


def make_env(**kwargs: Any) -> gym.Env:
    """A :class:`CartPoleSwingUpEnv` (the registry adds the 200-step time limit)."""
    return CartPoleSwingUpEnv(**kwargs)


def _saturating_cost() -> SaturatingCost:
    """pilco-matlab ``settings_cp.m`` / ``loss_cp.m`` on ``[x, x_dot, th, th_dot]`` (th = pi up):
    the pole tip's squared distance to the upright target,
    ``d^2 = (x + l sin th)^2 + l^2 (cos th + 1)^2``, as a quadratic form in ``[x, sin th, cos th]``."""
    ell = POLE_LENGTH
    q = np.zeros((6, 6))  # a = [x, x_dot, th, th_dot, sin th, cos th]
    q[np.ix_([0, 4], [0, 4])] = np.outer([1.0, ell], [1.0, ell])
    q[5, 5] = ell**2
    return SaturatingCost(
        angle_dims=(2,),
        target=(0.0, 0.0, math.pi, 0.0, 0.0, -1.0),  # [0 0 0 pi] and its sin/cos
        weight=tuple(map(tuple, q)),
        width=0.25,  # cost.width
        dyn_inputs=(0, 1, 3, 4, 5),  # dyni = [x v dtheta sin cos]
        policy_inputs=(0, 1, 3, 4, 5),  # poli = dyni
        policy_lengthscales=(1.0, 1.0, 1.0, 0.7, 0.7),  # policy.p.hyp = log([1 1 1 0.7 0.7 ...])
        horizon=40,  # T = 4 s at dt = 0.1 s
        init_mean=(0.0,) * 4,  # mu0, the env's reset mean
        init_cov=tuple(map(tuple, INIT_STD**2 * np.eye(4))),  # S0 = 0.1^2 I, the env's reset
    )


SATURATING_COST = _saturating_cost()
"""PILCO's cost and settings for this task (``TaskEntry.saturating_cost``)."""
