"""``mppi``: MPC with model-predictive path integral control (Williams et al. 2017, "Information
Theoretic MPC for Model-Based Reinforcement Learning"), in the form PDDM uses it (Nagabandi et al.
2019, "Deep Dynamics Models for Learning Dexterous Manipulation").

The optimizer (:class:`algorithms.planners.optimizers.MPPI`) perturbs the warm-started mean with
Gaussian noise filtered in time (``u_t = beta (mean_t + eps_t) + (1 - beta) u_{t-1}``), scores the
samples under the model and sets the new mean to their ``exp(kappa (R - max R))``-weighted average.
Model and data loop as ``cem`` (:class:`algorithms.agents.mpc.MPCConfig`), so the two planners can be
compared on the same model, the learned ensemble or the true model.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.agents.mpc import MPCAgent, MPCConfig
from algorithms.api import PositiveFloat, PositiveFraction, PositiveInt
from algorithms.planners.optimizers import MPPI, TrajectoryOptimizer


@dataclass(frozen=True)
class MPPIConfig(MPCConfig):
    """MPPI-MPC. Planner: PDDM (google-research/pddm ``pddm/utils/... parse args`` defaults
    ``mppi_kappa=1.0``, ``mppi_mag_noise=0.9``, ``mppi_beta=0.8``); model: :class:`MPCConfig`."""

    population: PositiveInt = 400
    """Samples per iteration. 400, as PETS's CEM population, so the two planners get the same
    model budget."""
    iterations: PositiveInt = 1
    """Mean updates per env step. PDDM updates once per step (the warm start carries the rest)."""
    kappa: PositiveFloat = 1.0
    """Reward-weighting factor (inverse temperature). PDDM ``mppi_kappa=1.0``."""
    sigma: PositiveFloat = 0.9
    """Noise std in units of the action half-range. PDDM ``mppi_mag_noise=0.9``."""
    beta: PositiveFraction = 0.8
    """Temporal filter of the noise (1: white). PDDM ``mppi_beta=0.8``."""


class MPPIAgent(MPCAgent):
    """MPC with PDDM's MPPI over a learned ensemble or the true model."""

    name = "mppi"
    Config = MPPIConfig

    def make_optimizer(self) -> TrajectoryOptimizer:
        return self.build_optimizer(MPPI, "population", "iterations", "kappa", "sigma", "beta")
