"""``rs``: random-shooting MPC (Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based
Deep Reinforcement Learning with Model-Free Fine-Tuning").

At every step: sample ``population`` action sequences of length ``horizon`` uniformly within the
action bounds, score them all under the model (one batched rollout: ``population x particles``
rows, one model call per horizon step) with the task's ``reward_fn`` / ``termination_fn``, and
execute the first action of the sequence with the highest mean predicted return.

The model is either the probabilistic ensemble (:mod:`algorithms.models.ensemble`) trained on
the real transitions (the default: ``initial_random_steps`` of uniform random actions, then a
refit after every training episode and, optionally, every ``model.train_every`` steps; the
data aggregation loop of Nagabandi et al.), or the task's true torch ``dynamics``
(``oracle=True``, an ablation that needs :attr:`Capability.DYNAMICS` or a simulator).

Differences from the paper, on purpose: the model is the PETS/MBPO probabilistic ensemble (the
paper uses one deterministic MLP, 2x500 ReLU, MSE loss); with ``propagation="mean"`` and
``sample=False`` (the defaults) the planner sees the elites' mean prediction, the deterministic
analogue. Nagabandi et al. also refit on a fixed number of epochs; here the ensemble early-stops
on a holdout set (``model.max_epochs`` caps it).

Planning cost per env step: ``horizon`` model calls on ``population * particles`` rows
(``x model.elites`` for ``propagation="mean"``): the paper-sized default (1000 x 20, mean over 5
elites) costs ~30x the quick settings below (measured per-step times:
``docs/algorithms/planners.md``).
The MPC machinery (model fitting, the oracle, the objective) is shared with ``cem``/``mppi``/
``icem``/``pets`` (:mod:`algorithms.agents.mpc`). Quick runs should override e.g. ``population=200, horizon=15, propagation="tsinf",
model.max_epochs=40``: this learns Pendulum in 1500 steps (``tests/test_rs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from algorithms.agents.mpc import MPCAgent, MPCConfig
from algorithms.api import PositiveInt
from algorithms.planners.optimizers import RandomShooting, TrajectoryOptimizer


@dataclass(frozen=True)
class RSConfig(MPCConfig):
    """Random-shooting MPC. Planner defaults: Nagabandi et al. 2018 official code
    (anagabandi/nn_dynamics ``yaml_files/cheetah_forward.yaml``); model defaults: MBPO/PETS."""

    horizon: PositiveInt = 20
    """Planning horizon H. nn_dynamics ``cheetah_forward.yaml`` ``controller.horizon: 20``
    (hopper 40, ant 5, swimmer 20)."""
    population: PositiveInt = 1000
    """Candidate sequences K. nn_dynamics ``cheetah_forward.yaml``
    ``controller.num_control_samples: 1000`` (swimmer 5000, ant 15000)."""
    particles: PositiveInt = 1
    """Model rollouts per candidate (returns averaged). 1: Nagabandi's deterministic model; PETS
    uses 20 with its own propagation."""
    propagation: Literal["ts1", "tsinf", "mean"] = "mean"
    """Ensemble propagation (PETS Sec. 5). ``"mean"``: elites' mean (deterministic, closest to
    Nagabandi's single model)."""
    sample: bool = False
    """Sample the Gaussian next state (PETS) instead of taking its mean (Nagabandi)."""


class RSAgent(MPCAgent):
    """Random-shooting MPC over a learned ensemble or the true model. See the module doc."""

    name = "rs"
    Config = RSConfig

    def make_optimizer(self) -> TrajectoryOptimizer:
        return self.build_optimizer(RandomShooting, "population")
