"""``lqr``: infinite-horizon discrete-time LQR on the task's known dynamics, linearized at its
equilibrium (the upright pole). A controller, not a learner: the gain is computed once.

Given ``x_{t+1} - x* ≈ A (x_t - x*) + B (u_t - u*)`` from ``task.linearize(x*, u*)`` (autograd of
the torch dynamics, or central finite differences of the MuJoCo simulator step), solve the
discrete algebraic Riccati equation ``P = Q + Aᵀ P A - Aᵀ P B (R + Bᵀ P B)⁻¹ Bᵀ P A`` and act with
``u = u* - K (x - x*)``, ``K = (R + Bᵀ P B)⁻¹ Bᵀ P A``, clipped to the action bounds.
(Anderson & Moore, "Optimal Control: Linear Quadratic Methods", 1990, ch. 2-3.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import solve_discrete_are

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    ConfigError,
    NonNegativeFloat,
    PositiveFloat,
    RunContext,
)
from envs.spec import TaskSpec


@dataclass(frozen=True)
class LQRConfig(AlgoConfig):
    """Quadratic cost weights. LQR has no paper defaults: identity state cost and a small control
    cost are the textbook starting point (Anderson & Moore 1990) and stabilise every upright task
    in the suite; tune them per task in the suite's overrides."""

    state_cost: NonNegativeFloat | tuple[NonNegativeFloat, ...] = 1.0
    """Diagonal of Q: one weight for every observation dim, or one per dim."""
    action_cost: PositiveFloat = 0.1
    """R = action_cost * I."""


class LQR(Algorithm):
    """Linear-quadratic regulator around ``task.equilibrium``."""

    name = "lqr"
    Config = LQRConfig
    requires = frozenset({Capability.LINEARIZATION, Capability.CONTINUOUS_ACTIONS})

    def __init__(self, task: TaskSpec, config: LQRConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        assert task.linearize is not None and task.equilibrium is not None
        self.x_star, self.u_star = task.equilibrium
        a_mat, b_mat = task.linearize(self.x_star, self.u_star)
        q = np.broadcast_to(np.asarray(config.state_cost, np.float64), (task.obs_dim,))
        if q.shape != (task.obs_dim,):
            raise ConfigError(f"state_cost needs 1 or {task.obs_dim} weights for {task.name}")
        self.gain, self.riccati = lqr_gain(
            a_mat, b_mat, np.diag(q), config.action_cost * np.eye(task.act_dim)
        )

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        u = self.u_star - self.gain @ (np.asarray(obs, np.float64) - self.x_star)
        return np.clip(u, self.task.act_low, self.task.act_high).astype(np.float32)


def lqr_gain(
    a_mat: np.ndarray, b_mat: np.ndarray, q: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(K [A, O], P [O, O])`` of the infinite-horizon discrete LQR problem."""
    p = solve_discrete_are(a_mat, b_mat, q, r)
    k = np.linalg.solve(r + b_mat.T @ p @ b_mat, b_mat.T @ p @ a_mat)
    return k, p
