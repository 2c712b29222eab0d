"""CartPole-v1 (Gymnasium 1.x, ``gymnasium/envs/classic_control/cartpole.py``), discrete actions.

obs ``[x, x_dot, theta, theta_dot]`` (float32 copy of the float64 state), action ``0`` (push left,
-10 N) or ``1`` (push right, +10 N); torch functions take the action one-hot ``[..., 2]``.

- reward: ``1.0`` on every step, *including* the one that terminates (Gymnasium gives 0 only for
  steps taken after termination, which the driver never takes);
- termination on the post-step state: ``|x| > 2.4`` or ``|theta| > 12 deg`` (``0.20944`` rad);
- dynamics: Barto-Sutton-Anderson equations with the env's explicit Euler step (``tau = 0.02``).

The env compares the float64 state with the thresholds, the termination function the float32
observation: they can disagree only if the state is within float32 rounding (~1e-7) of a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import gymnasium as gym
import torch

Tensor = torch.Tensor
T = TypeVar("T", float, Tensor)

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


def make_env(**kwargs: Any) -> gym.Env:
    """A bare ``CartPoleEnv`` (the registry adds the 500-step time limit)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return CartPoleEnv(**kwargs)


def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``-> [...]`` ones: CartPole-v1 pays 1.0 per step (the terminating step included)."""
    return torch.ones(next_obs.shape[:-1], dtype=next_obs.dtype, device=next_obs.device)


def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., 4] -> [...]``: cart out of ``[-2.4, 2.4]`` or pole beyond 12 degrees."""
    x, theta = next_obs[..., 0], next_obs[..., 2]
    return (
        (x < -X_THRESHOLD)
        | (x > X_THRESHOLD)
        | (theta < -THETA_THRESHOLD)
        | (theta > THETA_THRESHOLD)
    )


def euler_step(
    x: T, x_dot: T, theta: T, theta_dot: T, force: T, sin: Callable[[T], T], cos: Callable[[T], T]
) -> tuple[T, T, T, T]:
    """One explicit Euler step of the cart-pole ODE (Barto, Sutton & Anderson 1983), on floats
    (an env) or tensors (torch dynamics); shared with the continuous-force cart-pole."""
    costheta, sintheta = cos(theta), sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        LENGTH * (4.0 / 3.0 - MASSPOLE * costheta**2 / TOTAL_MASS)
    )
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    return x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc


def dynamics(obs: Tensor, act: Tensor) -> Tensor:
    """``[..., 4], [..., 2] (one-hot) -> [..., 4]``: CartPole-v1's Euler step in torch."""
    x, x_dot, theta, theta_dot = obs.unbind(-1)
    force = FORCE_MAG * (act[..., 1] - act[..., 0])
    return torch.stack(euler_step(x, x_dot, theta, theta_dot, force, torch.sin, torch.cos), -1)
