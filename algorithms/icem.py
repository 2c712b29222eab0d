"""``icem``: MPC with the improved cross-entropy method (Pinneri et al. 2020, "Sample-efficient
Cross-Entropy Method for Real-time Planning").

iCEM (:class:`algorithms.planners.optimizers.ICEM`) changes CEM where it wastes samples: colored
(``1/f^beta``) noise along time, a population shrinking by ``population_decay`` per iteration, a
fraction of the elites kept from the last iteration and (shifted) from the last env step, the mean
itself tried in the last iteration, and the best sequence executed. Model and data loop as ``cem``
(:class:`algorithms.agents.mpc.MPCConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.agents.mpc import MPCAgent, MPCConfig
from algorithms.api import NonNegativeFloat, PositiveFloat, PositiveInt, UnitInterval
from algorithms.planners.optimizers import ICEM, TrajectoryOptimizer


@dataclass(frozen=True)
class ICEMConfig(MPCConfig):
    """iCEM-MPC. Planner: Pinneri et al. 2020, Sec. 3 and the hyperparameter table of App. A
    (``N``, ``K``, ``gamma``, ``xi``, ``beta``, ``alpha``, ``sigma_init``); model: :class:`MPCConfig`."""

    population: PositiveInt = 300
    """Initial samples per step ``N`` (App. A uses 100-400 by task; 300 is iCEM's common
    choice for its budget comparisons)."""
    elites: PositiveInt = 10
    """Elites ``K``. iCEM App. A: 10."""
    iterations: PositiveInt = 3
    """Iterations per env step. iCEM App. A: 3 (4 for the hardest tasks)."""
    alpha: UnitInterval = 0.1
    """Momentum of the mean/std update. iCEM App. A: 0.1."""
    noise_beta: NonNegativeFloat = 2.0
    """Colored-noise exponent ``beta``. iCEM App. A: 2.0 for most tasks (0: white noise)."""
    population_decay: PositiveFloat = 1.25
    """Population decay ``gamma`` per iteration (``N_i = max(N gamma^-i, 2K)``). iCEM: 1.25."""
    keep_elites: UnitInterval = 0.3
    """Fraction ``xi`` of elites kept across iterations and env steps. iCEM: 0.3."""
    init_std: PositiveFloat = 0.5
    """Initial std in units of the action half-range. iCEM ``sigma_init = 0.5``."""
    execute_best: bool = True
    """Execute the best sequence found (iCEM) instead of the final mean (CEM)."""


class ICEMAgent(MPCAgent):
    """MPC with iCEM over a learned ensemble or the true model."""

    name = "icem"
    Config = ICEMConfig

    def make_optimizer(self) -> TrajectoryOptimizer:
        return self.build_optimizer(
            ICEM,
            "population",
            "elites",
            "iterations",
            "alpha",
            "noise_beta",
            "population_decay",
            "keep_elites",
            "init_std",
            "execute_best",
        )
