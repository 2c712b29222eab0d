"""Helpers shared by the MuJoCo task modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

Tensor = torch.Tensor


def fixed_kwargs(kwargs: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """``{**kwargs, **fixed}``, refusing overrides of the arguments the task's functions rely on."""
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(
                f"{key}={kwargs[key]!r} is fixed to {value!r} for this task "
                "(its reward/termination functions depend on it)"
            )
    return {**kwargs, **fixed}


def never(next_obs: Tensor) -> Tensor:
    """``[..., O] -> [...]`` all False."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def ctrl_cost(act: Tensor, weight: float) -> Tensor:
    """``[..., A] -> [...]``: ``weight * sum(act^2)`` on the raw action, as Gymnasium v5 does."""
    return weight * (act**2).sum(-1)


def healthy_locomotion_fns(
    is_healthy: Callable[[Tensor], Tensor],
    *,
    dt: float,
    forward_weight: float,
    healthy_reward: float,
    ctrl_weight: float,
) -> tuple[Callable[[Tensor, Tensor, Tensor], Tensor], Callable[[Tensor, Tensor, Tensor], Tensor]]:
    """``(termination_fn, reward_fn)`` of a v5 locomotion task that ends when unhealthy.

    ``termination_fn``: the post-step state is unhealthy. ``reward_fn``: :func:`locomotion_reward`
    with the healthy bonus paid when the post-step state is healthy.
    """

    def termination_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        return ~is_healthy(next_obs)

    def reward_fn(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        return locomotion_reward(
            obs,
            act,
            next_obs,
            dt=dt,
            forward_weight=forward_weight,
            healthy=is_healthy(next_obs),
            healthy_reward=healthy_reward,
            ctrl_weight=ctrl_weight,
        )

    return termination_fn, reward_fn


def locomotion_reward(
    obs: Tensor,
    act: Tensor,
    next_obs: Tensor,
    *,
    dt: float,
    forward_weight: float,
    healthy: Tensor,
    healthy_reward: float,
    ctrl_weight: float,
) -> Tensor:
    """Gymnasium v5 locomotion reward from ``obs[..., 0]``, the x the forward term differentiates:
    ``forward_weight * dx / dt + healthy_reward * healthy - ctrl_weight * |a|^2``; ``[...]``."""
    forward = forward_weight * (next_obs[..., 0] - obs[..., 0]) / dt
    return forward + healthy_reward * healthy.to(next_obs.dtype) - ctrl_cost(act, ctrl_weight)


# --- observations from simulator states (``StateObservation.from_state``, see envs/simulate.py) ---

VEL_CLIP = 10.0
"""Hopper-v5 and Walker2d-v5 clip ``qvel`` to ``[-10, 10]`` in ``_get_obs``."""


def qpos_qvel_obs(qpos: np.ndarray, qvel: np.ndarray, stage: np.ndarray | None) -> np.ndarray:
    """``[..., nq], [..., nv] -> [..., nq + nv]``: ``[qpos, qvel]`` (root x kept)."""
    return np.concatenate([qpos, qvel], axis=-1)


def qpos_clipped_qvel_obs(
    qpos: np.ndarray, qvel: np.ndarray, stage: np.ndarray | None
) -> np.ndarray:
    """``[qpos, clip(qvel, -10, 10)]``: v5's Hopper/Walker2d ``_get_obs`` with the root x kept."""
    return np.concatenate([qpos, np.clip(qvel, -VEL_CLIP, VEL_CLIP)], axis=-1)


def stage_qpos2_qvel_obs(
    qpos: np.ndarray, qvel: np.ndarray, stage: np.ndarray | None
) -> np.ndarray:
    """``[stage (the prepended x), qpos[2:], qvel]``: Ant/Humanoid's MBPO observation."""
    assert stage is not None
    return np.concatenate([stage, qpos[..., 2:], qvel], axis=-1)
