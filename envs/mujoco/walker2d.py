"""Walker2d-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/walker2d_v5.py``), with root x in obs.

Made with ``exclude_current_positions_from_observation=False``: obs (float64, 18) =
``[x, z, torso_angle, 6 joint angles, qvel (9) clipped to [-10, 10]]``; action ``[6]`` in
``[-1, 1]``; ``frame_skip = 4`` of RK4 ``timestep = 0.002`` (``dt = 0.008``). ``obs[1:]`` is the
standard 17-dim Walker2d observation.

- healthy (post-step): ``0.8 < z < 2.0`` and ``-1 < angle < 1`` (v5 has no state-range check);
- termination = not healthy;
- reward = ``(x' - x) / dt + 1 * healthy - 1e-3 |a|^2``.

All exact functions of ``(obs, act, next_obs)``. Simulator rollouts: :data:`SIM_OBS`
(``[qpos, clipped qvel]``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from envs.mujoco._common import fixed_kwargs, healthy_locomotion_fns, qpos_clipped_qvel_obs
from envs.spec import StateObservation
from envs.wrappers import SimStateInfo

Tensor = torch.Tensor

DT = 0.002 * 4
FORWARD_WEIGHT = 1.0
CTRL_WEIGHT = 1e-3
HEALTHY_REWARD = 1.0
HEALTHY_Z_RANGE = (0.8, 2.0)
HEALTHY_ANGLE_RANGE = (-1.0, 1.0)
FIXED = {"exclude_current_positions_from_observation": False}


def make_env(**kwargs: Any) -> gym.Env:
    """``Walker2dEnv`` (root x kept) + ``info["sim_state"]``."""
    from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

    return SimStateInfo(Walker2dEnv(**fixed_kwargs(kwargs, FIXED)))


def is_healthy(obs: Tensor) -> Tensor:
    """``[..., 18] -> [...]`` bool: Walker2d-v5's ``is_healthy``."""
    z, angle = obs[..., 1], obs[..., 2]
    healthy_z = (z > HEALTHY_Z_RANGE[0]) & (z < HEALTHY_Z_RANGE[1])
    healthy_angle = (angle > HEALTHY_ANGLE_RANGE[0]) & (angle < HEALTHY_ANGLE_RANGE[1])
    return healthy_z & healthy_angle


# termination: the post-step state is unhealthy; reward: forward velocity + healthy bonus - ctrl cost
termination_fn, reward_fn = healthy_locomotion_fns(
    is_healthy,
    dt=DT,
    forward_weight=FORWARD_WEIGHT,
    healthy_reward=HEALTHY_REWARD,
    ctrl_weight=CTRL_WEIGHT,
)


SIM_OBS = StateObservation(qpos_clipped_qvel_obs)
