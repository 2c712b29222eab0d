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

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.spec import SaturatingCost

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


def _state(obs: np.ndarray) -> np.ndarray:
    """obs ``[N, 3] = [cos th, sin th, th_dot]`` -> state ``[N, 2] = [th, th_dot]``."""
    return np.stack([np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2]], 1)


def _saturating_cost() -> SaturatingCost:
    """pilco-matlab's pendulum scenario (``settings_pendulum.m``) on this env (th = 0 up, l = 1):
    the state is ``[th, th_dot]`` (``th = atan2(sin, cos)`` of the observation, its one-step change
    unwrapped), augmented by ``gTrig`` to ``[th, th_dot, sin th, cos th]``; dynamics and policy
    see ``[th_dot, sin, cos]``, the cost the tip's squared distance to the top,
    ``sin^2 + (cos - 1)^2``, width 0.5 and policy length-scales ``[1 0.7 0.7]`` (settings file).

    The env resets uniformly (th in [-pi, pi], th_dot in [-1, 1]). One Gaussian with those
    moments (and the observation as the state) is a poor start for moment matching: measured, no
    PILCO learning in 5 trials (evaluation -1280 to -1600, a random policy's range).
    pilco-matlab's remedy for multimodal starts (``value.m`` with several start means): ``J`` is
    the mean over 8 start Gaussians at ``th = k pi / 4``, ``th_dot = 0``, std
    ``(pi / 8, sqrt(1/3))``, which together cover the reset (results:
    ``docs/algorithms/pilco.md``).
    """
    q = np.zeros((4, 4))  # a = [th, th_dot, sin th, cos th]
    q[2, 2] = q[3, 3] = 1.0
    k = 8
    return SaturatingCost(
        angle_dims=(0,),
        target=(0.0, 0.0, 0.0, 1.0),
        weight=tuple(map(tuple, q)),
        width=0.5,
        dyn_inputs=(1, 2, 3),
        policy_inputs=(1, 2, 3),
        policy_lengthscales=(1.0, 0.7, 0.7),
        horizon=30,
        init_mean=(0.0, 0.0),
        init_cov=(((math.pi / k) ** 2, 0.0), (0.0, 1.0 / 3.0)),
        start_means=tuple((2.0 * math.pi * i / k, 0.0) for i in range(k)),
        obs_to_state=_state,
        wrap_dims=(0,),
    )


SATURATING_COST = _saturating_cost()
"""PILCO's cost and settings for this task (``TaskEntry.saturating_cost``)."""
