"""InvertedPendulum-v5 (Gymnasium 1.x, ``gymnasium/envs/mujoco/inverted_pendulum_v5.py``).

obs ``[x_cart, theta, x_cart_dot, theta_dot]`` = ``[qpos, qvel]`` (float64, unclipped), action
``[f]`` in ``[-3, 3]``, ``frame_skip = 2`` of RK4 ``timestep = 0.02`` (env ``dt = 0.04``).

- termination (post-step): a non-finite observation or ``|theta| > 0.2``;
- reward: ``1`` while not terminated, ``0`` on the terminating step.

Both are exact functions of ``next_obs``. The XML's pole capsule runs from ``(0, 0, 0)`` to
``(0.001, 0, 0.6)``, so the upright rest state (the registry's equilibrium) is
``theta* = -atan(0.001 / 0.6) = -1.667e-3`` rad, not 0: ``(0, theta*, 0, 0)`` with ``f = 0`` is an
exact fixed point of the env step. :func:`linearize` gives the discrete-time Jacobians of one
env step (both substeps) by central finite differences of the simulator (see :func:`linearize`).
Simulator rollouts: the observation is ``[qpos, qvel]`` (:data:`SIM_OBS`).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.mujoco._common import qpos_qvel_obs
from envs.spec import StateObservation
from envs.wrappers import SimStateInfo

Tensor = torch.Tensor

XML = "inverted_pendulum.xml"
FRAME_SKIP = 2
ANGLE_LIMIT = 0.2
FD_EPS = 1e-6


def make_env(**kwargs: Any) -> gym.Env:
    """``InvertedPendulumEnv`` + ``info["sim_state"]`` (the registry adds the time limit)."""
    from gymnasium.envs.mujoco.inverted_pendulum_v5 import InvertedPendulumEnv

    return SimStateInfo(InvertedPendulumEnv(**kwargs))


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 4] -> [...]``: non-finite state or pole beyond 0.2 rad."""
    return ~torch.isfinite(next_obs).all(-1) | (next_obs[..., 1].abs() > ANGLE_LIMIT)


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 4] -> [...]``: 1 per step survived (0 on the terminating step)."""
    return (~termination_fn(obs, act, next_obs)).to(next_obs.dtype)


SIM_OBS = StateObservation(qpos_qvel_obs)


@functools.cache
def _model() -> Any:
    import mujoco
    from gymnasium.envs.mujoco.mujoco_env import expand_model_path

    return mujoco.MjModel.from_xml_path(expand_model_path(XML))


def _step(model: Any, data: Any, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``[4], [1] -> [4]``: one env step (``FRAME_SKIP`` ``mj_step``s) from ``[qpos, qvel] = x``."""
    import mujoco

    mujoco.mj_resetData(model, data)
    data.qpos[:] = x[: model.nq]
    data.qvel[:] = x[model.nq :]
    data.ctrl[:] = u
    mujoco.mj_step(model, data, nstep=FRAME_SKIP)
    return np.concatenate([data.qpos, data.qvel])


def linearize(obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[4], [1] -> (A [4, 4], B [4, 1])``: Jacobians of one env step at ``(obs, act)``.

    Central finite differences (``eps = 1e-6``) of the whole env step, both substeps included,
    simulated with ``mj_step`` on a scratch ``mjData`` of a freshly loaded model. (MuJoCo's own
    ``mjd_transitionFD`` would be the natural tool, but MuJoCo 4 refuses models with the RK4
    integrator, which this one uses.) The observation ``[qpos, qvel]`` is exactly the state: one
    slide and one hinge joint, no actuator activations.
    """
    import mujoco

    model = _model()
    data = mujoco.MjData(model)
    x = np.asarray(obs, np.float64).reshape(-1)
    u = np.asarray(act, np.float64).reshape(-1)
    nx, nu = x.size, u.size
    a_mat, b_mat = np.empty((nx, nx)), np.empty((nx, nu))
    for i, dx in enumerate(np.eye(nx) * FD_EPS):
        a_mat[:, i] = (_step(model, data, x + dx, u) - _step(model, data, x - dx, u)) / (2 * FD_EPS)
    for j, du in enumerate(np.eye(nu) * FD_EPS):
        b_mat[:, j] = (_step(model, data, x, u + du) - _step(model, data, x, u - du)) / (2 * FD_EPS)
    return a_mat, b_mat
