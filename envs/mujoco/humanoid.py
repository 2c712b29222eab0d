"""Humanoid-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/humanoid_v5.py``) with MBPO's observation.

Made with ``include_cinert/cvel/qfrc_actuator/cfrc_ext_in_observation=False`` and
``contact_cost_weight=0``. obs (float64, 46):

- ``obs[0]``: the x coordinate of the mass-weighted centre of mass exactly as v5's ``mass_center``
  computes it for the forward reward (``sum_b m_b xipos_b / sum_b m_b``); after ``mj_step`` the
  ``xipos`` are those of the last RK4 stage of the last substep (equal to ``qpos``'s right after
  ``reset``);
- ``obs[1:]`` (45): MBPO's ``HumanoidTruncatedObs`` observation ``[qpos[2:] (22), qvel (23)]``, so
  ``obs[1]`` is the torso height ``qpos[2]``.

Action ``[17]`` in ``[-0.4, 0.4]``; ``frame_skip = 5`` of RK4 ``timestep = 0.003`` (``dt = 0.015``).

- healthy (post-step): ``1.0 < z < 2.0``; termination = not healthy;
- reward = ``1.25 (obs'[0] - obs[0]) / dt + 5 * healthy - 0.1 |a|^2`` (v5's control cost squares
  ``data.ctrl``, which is the action as sent): exact.

The contact cost is switched off because ``cfrc_ext`` is not in the observation. MBPO (Janner et
al. 2019) also effectively trained without it: on mujoco >= 2.0 ``cfrc_ext`` was identically zero
(not computed without ``mj_rnePostConstraint``), so its Humanoid contact cost was 0.

Simulator rollouts (:data:`SIM_OBS`): ``obs[1:]`` comes from ``(qpos, qvel)``, ``obs[0]`` is read from
an ``mjData`` that has just replayed the env step's last physics substep (the RK4-stage ``xipos``).
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

DT = 0.003 * 5
FORWARD_WEIGHT = 1.25
CTRL_WEIGHT = 0.1
HEALTHY_REWARD = 5.0
HEALTHY_Z_RANGE = (1.0, 2.0)
FIXED = {
    "exclude_current_positions_from_observation": True,
    "include_cinert_in_observation": False,
    "include_cvel_in_observation": False,
    "include_qfrc_actuator_in_observation": False,
    "include_cfrc_ext_in_observation": False,
    "contact_cost_weight": 0.0,
}


def _com_x(env: Any) -> float:
    from gymnasium.envs.mujoco.humanoid_v5 import mass_center

    return float(mass_center(env.model, env.data)[0])


def make_env(**kwargs: Any) -> gym.Env:
    """``HumanoidEnv`` (MBPO observation, no contact cost), CoM x prepended, ``sim_state``."""
    from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

    return SimStateInfo(PrependObservation(HumanoidEnv(**fixed_kwargs(kwargs, FIXED)), _com_x))


def is_healthy(obs: Tensor) -> Tensor:
    """``[..., 46] -> [...]`` bool: Humanoid-v5's ``is_healthy``."""
    z = obs[..., 1]
    return (z > HEALTHY_Z_RANGE[0]) & (z < HEALTHY_Z_RANGE[1])


# termination: the post-step state is unhealthy; reward: forward velocity + healthy bonus - ctrl cost
termination_fn, reward_fn = healthy_locomotion_fns(
    is_healthy,
    dt=DT,
    forward_weight=FORWARD_WEIGHT,
    healthy_reward=HEALTHY_REWARD,
    ctrl_weight=CTRL_WEIGHT,
)


def _stage(model: Any, data: Any) -> np.ndarray:
    """``[1]``: the CoM x the env prepends (v5's ``mass_center``), as ``mj_step`` leaves it."""
    from gymnasium.envs.mujoco.humanoid_v5 import mass_center

    return np.asarray(mass_center(model, data)[:1], np.float64)


SIM_OBS = StateObservation(stage_qpos2_qvel_obs, _stage)
