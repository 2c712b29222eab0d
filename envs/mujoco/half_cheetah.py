"""HalfCheetah-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/half_cheetah_v5.py``), with root x in obs.

Made with ``exclude_current_positions_from_observation=False``: obs (float64, 18) =
``[qpos (9; qpos[0] = root x), qvel (9)]`` (unclipped); action ``[6]`` in ``[-1, 1]``;
``frame_skip = 5`` of ``timestep = 0.01`` (``dt = 0.05``). Observation ``obs[1:]`` is the standard
17-dim HalfCheetah observation.

reward = ``(x' - x) / dt - 0.1 |a|^2`` with ``x = qpos[0]`` before and after the step: exact.
Never terminates. Simulator rollouts: the observation is ``[qpos, qvel]`` (:data:`SIM_OBS`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from envs.mujoco._common import ctrl_cost, fixed_kwargs, never, qpos_qvel_obs
from envs.spec import StateObservation
from envs.wrappers import SimStateInfo

Tensor = torch.Tensor

DT = 0.01 * 5
FORWARD_WEIGHT = 1.0
CTRL_WEIGHT = 0.1
FIXED = {"exclude_current_positions_from_observation": False}


def make_env(**kwargs: Any) -> gym.Env:
    """``HalfCheetahEnv`` (root x kept) + ``info["sim_state"]``."""
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    return SimStateInfo(HalfCheetahEnv(**fixed_kwargs(kwargs, FIXED)))


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 18], [..., 6], [..., 18] -> [...]``: forward velocity minus control cost."""
    forward = FORWARD_WEIGHT * (next_obs[..., 0] - obs[..., 0]) / DT
    return forward - ctrl_cost(act, CTRL_WEIGHT)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]`` all False: HalfCheetah never terminates."""
    return never(next_obs)


SIM_OBS = StateObservation(qpos_qvel_obs)
