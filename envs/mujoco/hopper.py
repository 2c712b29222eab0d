"""Hopper-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/hopper_v5.py``), with root x in obs.

Made with ``exclude_current_positions_from_observation=False``: obs (float64, 12) =
``[x, z, torso_angle, thigh, leg, foot, qvel (6) clipped to [-10, 10]]``; action ``[3]`` in
``[-1, 1]``; ``frame_skip = 4`` of RK4 ``timestep = 0.002`` (``dt = 0.008``). ``obs[1:]`` is the
standard 11-dim Hopper observation.

- healthy (post-step): ``0.7 < z``, ``-0.2 < angle < 0.2`` and every element of
  ``state_vector()[2:] = [qpos[2:], qvel]`` strictly inside ``(-100, 100)``;
- termination = not healthy;
- reward = ``(x' - x) / dt + 1 * healthy - 1e-3 |a|^2``.

Unlike MBPO's ``static_fns/hopper.py`` (``np.abs(next_obs[:, 1:] < 100)``, a misplaced parenthesis
that never fires on large values), the state range is checked as the env does. The one residual gap:
the env checks *unclipped* ``qvel`` against 100 while the observation is clipped at 10, so a joint
moving faster than 100 rad/s (never seen in practice) would end the episode without the termination
function noticing. Everything else is exact. Simulator rollouts: :data:`SIM_OBS` (``[qpos, clipped qvel]``).
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
HEALTHY_STATE_RANGE = (-100.0, 100.0)
HEALTHY_Z_RANGE = (0.7, float("inf"))
HEALTHY_ANGLE_RANGE = (-0.2, 0.2)
FIXED = {"exclude_current_positions_from_observation": False}


def make_env(**kwargs: Any) -> gym.Env:
    """``HopperEnv`` (root x kept) + ``info["sim_state"]``."""
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    return SimStateInfo(HopperEnv(**fixed_kwargs(kwargs, FIXED)))


def is_healthy(obs: Tensor) -> Tensor:
    """``[..., 12] -> [...]`` bool: Hopper-v5's ``is_healthy`` (strict inequalities)."""
    z, angle, state = obs[..., 1], obs[..., 2], obs[..., 2:]
    lo, hi = HEALTHY_STATE_RANGE
    healthy_state = ((state > lo) & (state < hi)).all(-1)
    healthy_z = (z > HEALTHY_Z_RANGE[0]) & (z < HEALTHY_Z_RANGE[1])
    healthy_angle = (angle > HEALTHY_ANGLE_RANGE[0]) & (angle < HEALTHY_ANGLE_RANGE[1])
    return healthy_state & healthy_z & healthy_angle


# termination: the post-step state is unhealthy; reward: forward velocity + healthy bonus - ctrl cost
termination_fn, reward_fn = healthy_locomotion_fns(
    is_healthy,
    dt=DT,
    forward_weight=FORWARD_WEIGHT,
    healthy_reward=HEALTHY_REWARD,
    ctrl_weight=CTRL_WEIGHT,
)


SIM_OBS = StateObservation(qpos_clipped_qvel_obs)
