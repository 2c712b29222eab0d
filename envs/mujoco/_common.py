"""Helpers shared by the MuJoCo task modules."""

from __future__ import annotations

from typing import Any

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
