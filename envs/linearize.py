"""Discrete-time linearization of a task's torch dynamics by autograd."""

from __future__ import annotations

import numpy as np
import torch
from torch.func import jacrev

from envs.spec import DynamicsFn, LinearizeFn


def jacobian_linearizer(dynamics: DynamicsFn) -> LinearizeFn:
    """``linearize(obs, act) -> (A, B)`` with ``A = d f / d obs``, ``B = d f / d act`` (float64)."""

    def linearize(obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o = torch.as_tensor(obs, dtype=torch.float64)
        a = torch.as_tensor(act, dtype=torch.float64)
        a_mat, b_mat = jacrev(dynamics, argnums=(0, 1))(o, a)
        return a_mat.detach().numpy(), b_mat.detach().numpy()

    return linearize
