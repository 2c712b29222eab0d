"""Reacher-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/reacher_v5.py``).

obs (float64, 10): ``[cos q1, cos q2, sin q1, sin q2, target_x, target_y, q1_dot, q2_dot,
(fingertip - target)_x, (fingertip - target)_y]``; action ``[2]`` torques in ``[-1, 1]``;
``frame_skip = 2``. v5 computes the reward *after* the step:
``-|fingertip - target| - |a|^2``. Fingertip and target both lie in the plane ``z = 0.01``, so the
distance is the norm of ``next_obs[8:10]``, which Gymnasium computes from the very same body
positions: exact. Never terminates (episodes last 50 steps).

Simulator rollouts (:data:`SIM_OBS`): ``obs[:8]`` comes from ``(qpos, qvel)``; ``obs[8:10]`` reads body
positions, which after ``mj_step`` are those of the last RK4 stage, so it is read from an ``mjData``
that has just replayed the env step's last physics substep.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.mujoco._common import ctrl_cost, never
from envs.spec import StateObservation
from envs.wrappers import SimStateInfo

Tensor = torch.Tensor

DIST_WEIGHT = 1.0
CTRL_WEIGHT = 1.0


def make_env(**kwargs: Any) -> gym.Env:
    """``ReacherEnv`` + ``info["sim_state"]`` (the registry adds the 50-step time limit)."""
    from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

    return SimStateInfo(ReacherEnv(**kwargs))


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 10], [..., 2] -> [...]``: ``-|fingertip - target| - |a|^2`` after the step."""
    dist = torch.linalg.vector_norm(next_obs[..., 8:10], dim=-1)
    return -DIST_WEIGHT * dist - ctrl_cost(act, CTRL_WEIGHT)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]`` all False: Reacher never terminates."""
    return never(next_obs)


def _stage(model: Any, data: Any) -> np.ndarray:
    """``[2]``: ``(fingertip - target)[:2]`` as v5's ``_get_obs`` reads it after ``mj_step``."""
    return (data.body("fingertip").xpos - data.body("target").xpos)[:2]


def obs_from_state(qpos: np.ndarray, qvel: np.ndarray, stage: np.ndarray | None) -> np.ndarray:
    """``[..., 4], [..., 4], [..., 2] -> [..., 10]``: v5's ``_get_obs``."""
    assert stage is not None
    theta = qpos[..., :2]
    return np.concatenate(
        [np.cos(theta), np.sin(theta), qpos[..., 2:], qvel[..., :2], stage], axis=-1
    )


SIM_OBS = StateObservation(obs_from_state, _stage)
