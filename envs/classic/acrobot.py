"""Acrobot-v1 (Gymnasium 1.x, ``gymnasium/envs/classic_control/acrobot.py``), discrete actions.

obs ``[cos th1, sin th1, cos th2, sin th2, dth1, dth2]`` (float32), action ``0/1/2`` = torque
``-1/0/+1`` on the second joint; torch functions take the action one-hot ``[..., 3]``.

- termination on the post-step state: tip height ``-cos th1 - cos(th1 + th2) > 1``, written with
  ``cos(th1 + th2) = cos th1 cos th2 - sin th1 sin th2`` from the observation;
- reward: ``-1`` per step, ``0`` on the terminating step;
- dynamics: the env's "book" equations (Sutton & Barto), one RK4 step of ``dt = 0.2`` with the
  torque held, velocities clipped to ``[-4 pi, 4 pi]`` / ``[-9 pi, 9 pi]`` (angle wrapping is
  invisible in the cos/sin observation).

The env decides termination on its float64 state, the function on the float32 observation; they can
only disagree within float32 rounding (~1e-7) of the goal height.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch

Tensor = torch.Tensor

DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
GRAVITY = 9.8
TORQUES = (-1.0, 0.0, 1.0)


def make_env(**kwargs: Any) -> gym.Env:
    """A bare ``AcrobotEnv`` (the registry adds the 500-step time limit)."""
    from gymnasium.envs.classic_control.acrobot import AcrobotEnv

    return AcrobotEnv(**kwargs)


def _height(next_obs: Tensor) -> Tensor:
    c1, s1, c2, s2 = next_obs[..., 0], next_obs[..., 1], next_obs[..., 2], next_obs[..., 3]
    return -c1 - (c1 * c2 - s1 * s2)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 6] -> [...]``: the tip is more than one link length above the pivot."""
    return _height(next_obs) > 1.0


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]``: ``-1`` per step, ``0`` when the step reaches the goal."""
    return termination_fn(obs, act, next_obs).to(next_obs.dtype) - 1.0


def _dsdt(s: Tensor, torque: Tensor) -> Tensor:
    """``[..., 4] -> [..., 4]`` time derivative of ``(th1, th2, dth1, dth2)`` (book equations)."""
    m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
    lc1, lc2, i1, i2, g = LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI, LINK_MOI, GRAVITY
    theta1, theta2, dtheta1, dtheta2 = s.unbind(-1)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + i2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2) / (
        m2 * lc2**2 + i2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], dim=-1)


def dynamics(obs: Tensor, act: Tensor) -> Tensor:
    """``[..., 6], [..., 3] (one-hot) -> [..., 6]``: Acrobot-v1's RK4 step in torch."""
    th1 = torch.atan2(obs[..., 1], obs[..., 0])
    th2 = torch.atan2(obs[..., 3], obs[..., 2])
    s = torch.stack([th1, th2, obs[..., 4], obs[..., 5]], dim=-1)
    torque = act @ torch.tensor(TORQUES, dtype=act.dtype, device=act.device)
    k1 = _dsdt(s, torque)
    k2 = _dsdt(s + DT / 2 * k1, torque)
    k3 = _dsdt(s + DT / 2 * k2, torque)
    k4 = _dsdt(s + DT * k3, torque)
    ns = s + DT / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    n1, n2 = ns[..., 0], ns[..., 1]
    v1 = ns[..., 2].clamp(-MAX_VEL_1, MAX_VEL_1)
    v2 = ns[..., 3].clamp(-MAX_VEL_2, MAX_VEL_2)
    return torch.stack([torch.cos(n1), torch.sin(n1), torch.cos(n2), torch.sin(n2), v1, v2], -1)
