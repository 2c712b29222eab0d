"""Exact batched torch reward functions of DMC tasks at action repeat 1 (:mod:`envs.dmc`).

Each follows the task's ``get_reward`` in ``dm_control/suite/<domain>.py`` (dm-control 1.0.50),
written on the *next* observation (the suite scores the state after the step) and the action;
the contract test checks them against ``env.step``. :func:`tolerance` is the suite's
``dm_control.utils.rewards.tolerance`` in torch (every sigmoid it offers).

Observation layouts (the suite's dict flattened in key order):

- cartpole (balance, swingup and their sparse forms): ``[cart x, cos, sin, cart v, pole w]``
  (``position``: cart position and the pole frame's ``zz``, ``xz``; ``velocity``: ``qvel``);
- pendulum swingup: ``[cos, sin, w]`` (``orientation``: the pole frame's ``zz``, ``xz``);
- reacher easy / hard: ``[q1, q2, to_target x, to_target y, w1, w2]`` (``to_target``: target
  minus finger, in the plane).
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _sigmoid(x: Tensor, value_at_1: float, kind: str) -> Tensor:
    """The suite's ``_sigmoids``: ``1`` at ``x = 0``, ``value_at_1`` at ``|x| = 1``."""
    if kind in ("cosine", "linear", "quadratic") and not 0 <= value_at_1 < 1:
        raise ValueError(f"value_at_1 must be in [0, 1) for {kind!r}, got {value_at_1}")
    if kind not in ("cosine", "linear", "quadratic") and not 0 < value_at_1 < 1:
        raise ValueError(f"value_at_1 must be in (0, 1) for {kind!r}, got {value_at_1}")
    zero = torch.zeros_like(x)
    if kind == "gaussian":
        scale = math.sqrt(-2 * math.log(value_at_1))
        return torch.exp(-0.5 * (x * scale) ** 2)
    if kind == "hyperbolic":
        scale = math.acosh(1 / value_at_1)
        return 1 / torch.cosh(x * scale)
    if kind == "long_tail":
        scale = math.sqrt(1 / value_at_1 - 1)
        return 1 / ((x * scale) ** 2 + 1)
    if kind == "reciprocal":
        scale = 1 / value_at_1 - 1
        return 1 / (x.abs() * scale + 1)
    if kind == "cosine":
        s = x * (math.acos(2 * value_at_1 - 1) / math.pi)
        return torch.where(s.abs() < 1, (1 + torch.cos(math.pi * s)) / 2, zero)
    if kind == "linear":
        s = x * (1 - value_at_1)
        return torch.where(s.abs() < 1, 1 - s, zero)
    if kind == "quadratic":
        s = x * math.sqrt(1 - value_at_1)
        return torch.where(s.abs() < 1, 1 - s * s, zero)
    if kind == "tanh_squared":
        scale = math.atanh(math.sqrt(1 - value_at_1))
        return 1 - torch.tanh(x * scale) ** 2
    raise ValueError(f"unknown sigmoid {kind!r}")


def tolerance(
    x: Tensor,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = 0.1,
) -> Tensor:
    """``1`` where ``bounds[0] <= x <= bounds[1]``; outside, ``sigmoid`` of the distance to the
    nearest bound in units of ``margin`` (``0`` with ``margin = 0``), as the suite's
    ``rewards.tolerance``. Elementwise, any shape."""
    lower, upper = bounds
    if lower > upper:
        raise ValueError("lower bound must be <= upper bound")
    if margin < 0:
        raise ValueError("margin must be non-negative")
    inside = (x >= lower) & (x <= upper)
    one = torch.ones_like(x)
    if margin == 0:
        return torch.where(inside, one, torch.zeros_like(x))
    d = torch.where(x < lower, lower - x, x - upper) / margin
    return torch.where(inside, one, _sigmoid(d, value_at_margin, sigmoid))


# --- cartpole (dm_control/suite/cartpole.py, Balance._get_reward) --------------------------------


def cartpole_smooth(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """balance and swingup: upright x centered x small control x small velocity."""
    upright = (next_obs[..., 1] + 1) / 2
    centered = (1 + tolerance(next_obs[..., 0], margin=2)) / 2
    control = tolerance(act[..., 0], margin=1, value_at_margin=0, sigmoid="quadratic")
    small_control = (4 + control) / 5
    small_velocity = (1 + tolerance(next_obs[..., 4], margin=5)) / 2
    return upright * small_control * small_velocity * centered


def cartpole_sparse(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """balance_sparse and swingup_sparse: cart within 0.25 of the centre, pole within cos 0.995."""
    cart = tolerance(next_obs[..., 0], (-0.25, 0.25))
    angle = tolerance(next_obs[..., 1], (0.995, 1.0))
    return cart * angle


# --- pendulum (dm_control/suite/pendulum.py, SwingUp.get_reward) ----------------------------------


def pendulum_swingup(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """1 while the pole is within 8 degrees of upright (its frame's ``zz`` is the observed cosine)."""
    return tolerance(next_obs[..., 0], (math.cos(math.radians(8)), 1.0))


# --- reacher (dm_control/suite/reacher.py, Reacher.get_reward) ------------------------------------

_FINGER_RADIUS = 0.01
"""The finger geom's radius in ``reacher.xml`` (``geom_size['finger', 0]``)."""


def _reacher(target_size: float):
    def reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        dist = torch.linalg.vector_norm(next_obs[..., 2:4], dim=-1)
        return tolerance(dist, (0.0, target_size + _FINGER_RADIUS))

    return reward


reacher_easy = _reacher(0.05)
"""1 while the finger touches the target (easy: radius 0.05, the suite's ``_BIG_TARGET``)."""
reacher_hard = _reacher(0.015)
"""As :data:`reacher_easy` with the small target (0.015, ``_SMALL_TARGET``)."""


# --- termination -----------------------------------------------------------------------------------


def never(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """No offered DMC task terminates (the time limit ends every episode): all false."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)
