"""InvertedDoublePendulum-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/inverted_double_pendulum_v5.py``).

obs (float64, 9): ``[x_cart, sin th1, sin th2, cos th1, cos th2, x_cart_dot, th1_dot, th2_dot,
qfrc_constraint_cart]``, velocities and constraint force clipped to ``[-10, 10]``; action ``[f]`` in
``[-1, 1]``; ``frame_skip = 5`` of RK4 ``timestep = 0.01``. ``th2`` is relative to pole 1; both poles
are 0.6 m, so the tip is at ``x = x_cart + 0.6 sin th1 + 0.6 sin(th1 + th2)``,
``y = 0.6 cos th1 + 0.6 cos(th1 + th2)``.

- termination: ``y_tip <= 1``;
- reward: ``10 * (not terminated) - (0.01 x_tip^2 + (y_tip - 2)^2) - (1e-3 th1_dot^2 + 5e-3 th2_dot^2)``.

Where these functions can differ from ``env.step`` (both only in the last digits or in extreme states):

1. Gymnasium reads the tip from ``data.site_xpos``, which after ``mj_step`` holds the kinematics of
   the last RK4 stage, not of the final ``qpos`` that the observation shows. The two differ by
   O(h^3) times the angular jerk: < 1e-4 m while the poles are up (rewards agree to ~1e-4; the
   termination can differ only when the tip ends a step within ~1e-4 m of height 1), up to ~1e-2 in
   reward once fallen poles swing freely (states an episode never reaches: it has terminated).
2. The velocity penalty uses unclipped ``qvel``; the observation is clipped at 10 rad/s, which
   random and balancing policies do not reach before the pole falls.

Simulator rollouts (:data:`SIM_OBS`): ``obs[:8]`` comes from ``(qpos, qvel)``; ``obs[8]`` (the cart's
constraint force, from the solver's last RK4 stage) is read from an ``mjData`` that has just replayed
the env step's last physics substep.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.spec import StateObservation
from envs.wrappers import SimStateInfo

Tensor = torch.Tensor

POLE_LENGTH = 0.6
HEALTHY_REWARD = 10.0
TERMINATION_HEIGHT = 1.0
CLIP = 10.0


def make_env(**kwargs: Any) -> gym.Env:
    """``InvertedDoublePendulumEnv`` + ``info["sim_state"]`` (the registry adds the time limit)."""
    from gymnasium.envs.mujoco.inverted_double_pendulum_v5 import InvertedDoublePendulumEnv

    return SimStateInfo(InvertedDoublePendulumEnv(**kwargs))


def tip_position(obs: Tensor) -> tuple[Tensor, Tensor]:
    """``[..., 9] -> ([...], [...])``: the tip's ``(x, height)`` from the observation."""
    x, s1, s2, c1, c2 = obs[..., 0], obs[..., 1], obs[..., 2], obs[..., 3], obs[..., 4]
    s12 = s1 * c2 + c1 * s2
    c12 = c1 * c2 - s1 * s2
    return x + POLE_LENGTH * (s1 + s12), POLE_LENGTH * (c1 + c12)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 9] -> [...]``: the tip is at or below height 1."""
    return tip_position(next_obs)[1] <= TERMINATION_HEIGHT


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 9] -> [...]``: alive bonus minus tip-distance and joint-velocity penalties."""
    x, y = tip_position(next_obs)
    alive = HEALTHY_REWARD * (y > TERMINATION_HEIGHT).to(next_obs.dtype)
    dist_penalty = 0.01 * x**2 + (y - 2.0) ** 2
    vel_penalty = 1e-3 * next_obs[..., 6] ** 2 + 5e-3 * next_obs[..., 7] ** 2
    return alive - dist_penalty - vel_penalty


def _stage(model: Any, data: Any) -> np.ndarray:
    """``[1]``: ``clip(qfrc_constraint, -10, 10)[:1]`` as v5's ``_get_obs`` reads it."""
    return np.clip(data.qfrc_constraint, -CLIP, CLIP)[:1]


def obs_from_state(qpos: np.ndarray, qvel: np.ndarray, stage: np.ndarray | None) -> np.ndarray:
    """``[..., 3], [..., 3], [..., 1] -> [..., 9]``: v5's ``_get_obs``."""
    assert stage is not None
    angles = qpos[..., 1:]
    return np.concatenate(
        [qpos[..., :1], np.sin(angles), np.cos(angles), np.clip(qvel, -CLIP, CLIP), stage], axis=-1
    )


SIM_OBS = StateObservation(obs_from_state, _stage)
