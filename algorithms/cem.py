"""``cem``: MPC with the cross-entropy method (Botev et al. 2013) as PETS runs it.

The optimizer is PETS's CEM (:class:`algorithms.planners.optimizers.CEM`: truncated Gaussian kept
inside the action box, elites' mean and variance blended with momentum, the final mean executed).
The model is the probabilistic ensemble with PETS's propagation (TS-inf, 20 particles) trained
the MBPO way (:class:`algorithms.agents.mpc.MPCConfig`), or the true model (``oracle=True``: torch
dynamics or the MuJoCo simulator). ``pets`` is this plugin with PETS's own model recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.agents.mpc import MPCAgent, MPCConfig
from algorithms.api import NonNegativeFloat, PositiveInt, UnitInterval
from algorithms.planners.optimizers import CEM, TrajectoryOptimizer


@dataclass(frozen=True)
class CEMConfig(MPCConfig):
    """CEM-MPC. Planner: PETS (kchua/handful-of-trials ``dmbrl/config/cartpole.py`` ``OPT_CFG``
    and ``dmbrl/misc/optimizers/cem.py``); model and data loop: :class:`MPCConfig`."""

    population: PositiveInt = 400
    """Samples per CEM iteration. PETS cart-pole/reacher ``popsize=400`` (half-cheetah 500)."""
    elites: PositiveInt = 40
    """Elites refitted per iteration. PETS ``num_elites=40`` (half-cheetah 50)."""
    iterations: PositiveInt = 5
    """CEM iterations per env step. PETS ``max_iters=5``."""
    alpha: UnitInterval = 0.1
    """Momentum of the mean/variance update. PETS ``alpha=0.1``."""
    epsilon: NonNegativeFloat = 0.001
    """Stop early once the largest variance falls below this. PETS ``CEMOptimizer(epsilon=0.001)``."""


class CEMAgent(MPCAgent):
    """MPC with PETS's CEM over a learned ensemble or the true model."""

    name = "cem"
    Config = CEMConfig

    def make_optimizer(self) -> TrajectoryOptimizer:
        return self.build_optimizer(CEM, "population", "elites", "iterations", "alpha", "epsilon")
