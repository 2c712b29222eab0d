"""Ant-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/ant_v5.py``) with MBPO's truncated observation.

Made with ``include_cfrc_ext_in_observation=False`` and ``contact_cost_weight=0``. obs (float64, 28):

- ``obs[0]``: the torso's x position exactly as the forward reward reads it,
  ``data.body("torso").xpos[0]``. After ``mj_step`` this is the kinematics of the last RK4 stage of
  the last substep (not quite ``qpos[0]``; equal to it right after ``reset``);
- ``obs[1:]`` (27): MBPO's ``AntTruncatedObs`` observation ``[qpos[2:] (13), qvel (14)]``, so
  ``obs[1]`` is the torso height ``qpos[2]``.

Action ``[8]`` in ``[-1, 1]``; ``frame_skip = 5`` of RK4 ``timestep = 0.01`` (``dt = 0.05``).

- healthy (post-step): every state entry finite and ``0.2 <= z <= 1.0`` (inclusive in v5);
- termination = not healthy;
- reward = ``(obs'[0] - obs[0]) / dt + 1 * healthy - 0.5 |a|^2``: exact.

The contact cost is switched off because the contact forces (``cfrc_ext``) are not in the
observation. MBPO (Janner et al. 2019) also effectively trained without it: on mujoco >= 2.0
``cfrc_ext`` was identically zero (not computed without ``mj_rnePostConstraint``), so its Ant contact
cost was 0. The finiteness check sees ``obs`` only (``qpos[1]`` is not observed).

Simulator rollouts (:data:`SIM_OBS`): ``obs[1:]`` comes from ``(qpos, qvel)``, ``obs[0]`` is read from
an ``mjData`` that has just replayed the env step's last physics substep (the RK4-stage ``xpos``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.mujoco._common import fixed_kwargs, healthy_locomotion_fns, stage_qpos2_qvel_obs
from envs.spec import StateObservation
from envs.wrappers import PrependObservation, SimStateInfo

Tensor = torch.Tensor

DT = 0.01 * 5
FORWARD_WEIGHT = 1.0
CTRL_WEIGHT = 0.5
HEALTHY_REWARD = 1.0
HEALTHY_Z_RANGE = (0.2, 1.0)
FIXED = {
    "exclude_current_positions_from_observation": True,
    "include_cfrc_ext_in_observation": False,
    "contact_cost_weight": 0.0,
    "main_body": 1,
}


def _torso_x(env: Any) -> float:
    return float(env.data.body(env._main_body).xpos[0])


def make_env(**kwargs: Any) -> gym.Env:
    """``AntEnv`` (MBPO observation, no contact cost), torso x prepended, ``info["sim_state"]``."""
    from gymnasium.envs.mujoco.ant_v5 import AntEnv

    return SimStateInfo(PrependObservation(AntEnv(**fixed_kwargs(kwargs, FIXED)), _torso_x))


def is_healthy(obs: Tensor) -> Tensor:
    """``[..., 28] -> [...]`` bool: Ant-v5's ``is_healthy``."""
    z = obs[..., 1]
    finite = torch.isfinite(obs).all(-1)
    return finite & (z >= HEALTHY_Z_RANGE[0]) & (z <= HEALTHY_Z_RANGE[1])


# termination: the post-step state is unhealthy; reward: forward velocity + healthy bonus - ctrl cost
termination_fn, reward_fn = healthy_locomotion_fns(
    is_healthy,
    dt=DT,
    forward_weight=FORWARD_WEIGHT,
    healthy_reward=HEALTHY_REWARD,
    ctrl_weight=CTRL_WEIGHT,
)


def _stage(model: Any, data: Any) -> np.ndarray:
    """``[1]``: the torso x the env prepends, ``xpos`` as ``mj_step`` leaves it."""
    return data.xpos[FIXED["main_body"], :1].copy()


SIM_OBS = StateObservation(stage_qpos2_qvel_obs, _stage)
