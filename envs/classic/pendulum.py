"""Pendulum-v1 (Gymnasium 1.x, ``gymnasium/envs/classic_control/pendulum.py``).

obs ``[cos th, sin th, thdot]`` (float32), action ``[u]`` torque in ``[-2, 2]``, ``th = 0`` upright.
Step (semi-implicit Euler, ``dt = 0.05``, ``g = 10``, ``m = l = 1``)::

    u = clip(u, -2, 2)
    reward = -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)      # pre-step th, thdot
    thdot' = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, -8, 8)
    th' = th + thdot' dt

The reward depends on the *pre-step* state, so ``reward_fn`` reads ``obs`` (not ``next_obs``);
``th = atan2(sin, cos)`` is already normalised to ``[-pi, pi]``. The env never terminates.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

Tensor = torch.Tensor

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
G = 10.0
M = 1.0
L = 1.0


def make_env(**kwargs: Any) -> gym.Env:
    """A bare ``PendulumEnv`` (the registry adds the 200-step time limit)."""
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return PendulumEnv(**kwargs)


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 3], [..., 1], [..., 3] -> [...]``: Pendulum-v1's reward (from the pre-step state)."""
    th = torch.atan2(obs[..., 1], obs[..., 0])
    thdot = obs[..., 2]
    u = act[..., 0].clamp(-MAX_TORQUE, MAX_TORQUE)
    return -(th**2 + 0.1 * thdot**2 + 0.001 * u**2)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 3] -> [...]`` all False: Pendulum-v1 never terminates."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def dynamics(obs: Tensor, act: Tensor) -> Tensor:
    """``[..., 3], [..., 1] -> [..., 3]``: Pendulum-v1's step in torch (differentiable a.e.)."""
    th = torch.atan2(obs[..., 1], obs[..., 0])
    thdot = obs[..., 2]
    u = act[..., 0].clamp(-MAX_TORQUE, MAX_TORQUE)
    new_thdot = thdot + (3.0 * G / (2.0 * L) * torch.sin(th) + 3.0 / (M * L**2) * u) * DT
    new_thdot = new_thdot.clamp(-MAX_SPEED, MAX_SPEED)
    new_th = th + new_thdot * DT
    return torch.stack([torch.cos(new_th), torch.sin(new_th), new_thdot], dim=-1)
