"""``pets``: Probabilistic Ensembles with Trajectory Sampling (Chua et al. 2018, "Deep
Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models").

PETS = CEM-MPC (:mod:`algorithms.cem`) over a probabilistic ensemble, with every default from the
paper's code (kchua/handful-of-trials): 5 probabilistic networks trained for 5 epochs on all the
data (batch 32, no holdout, no elites) after every trial; 20 particles propagated with TS-inf
(each particle keeps one bootstrap for the whole horizon; ``propagation="ts1"`` and ``"mean"``,
the expectation, are selectable); CEM with population 400, 40 elites, 5 iterations, alpha 0.1,
horizon 25; rewards from the task's known reward function; one random trial first.

Per-task settings of the paper (set in ``benchmark/suites/paper.yaml``): cart-pole 3 x 500 hidden
units; half-cheetah 4 x 200, population 500, 50 elites, horizon 30 (the ``nn_constructor`` and
``OPT_CFG`` of each ``dmbrl/config/<task>.py``). The paper plots the best trial return so far; the
driver logs each trial's own return as ``train_return`` (the policy has no separate exploration),
and the suite's curves show that current return, not the running best.

Planning cost per env step: ``population x particles`` rows through one network per horizon step,
``horizon x iterations`` times (400 x 20 x 25 x 5 = 1M rows); ``model.bf16`` runs them on the
CPU's or GPU's bf16 units (see ``benchmark/perf/planning.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from algorithms.api import NonNegativeInt, PositiveInt, Range
from algorithms.cem import CEMAgent, CEMConfig
from algorithms.models.learned import LearnedModelConfig


@dataclass(frozen=True)
class PETSModelConfig(LearnedModelConfig):
    """PETS's model training (kchua/handful-of-trials ``dmbrl/modeling/models/BNN.py``,
    ``dmbrl/config/cartpole.py`` ``NN_TRAIN_CFG``); the other fields as
    :class:`~algorithms.models.learned.LearnedModelConfig`."""

    members: PositiveInt = 5
    """Probabilistic networks. PETS ``num_nets=5``."""
    elites: PositiveInt = 5
    """All 5 networks predict (PETS has no elite selection)."""
    batch_size: PositiveInt = 32
    """Minibatch per network. PETS ``BNN.train(batch_size=32)``."""
    max_epochs: NonNegativeInt = 5
    """Epochs per refit. PETS ``NN_TRAIN_CFG = {"epochs": 5}``."""
    holdout_ratio: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """No holdout: PETS ``BNN.train(holdout_ratio=0.0)`` trains on all the data."""


@dataclass(frozen=True)
class PETSConfig(CEMConfig):
    """PETS. Sources: kchua/handful-of-trials ``dmbrl/config/cartpole.py`` (``PLAN_HOR``,
    ``OPT_CFG``, ``NN_TRAIN_CFG``), ``dmbrl/controllers/MPC.py`` (``npart=20``, TS-inf),
    ``dmbrl/modeling/models/BNN.py`` (``train(batch_size=32, holdout_ratio=0)``)."""

    model: PETSModelConfig = field(default_factory=PETSModelConfig)
    """PETS's ensemble and training recipe (:class:`PETSModelConfig`: 5 networks, all predict,
    batch 32, 5 epochs per refit, no holdout)."""


class PETS(CEMAgent):
    """CEM-MPC over a probabilistic ensemble with trajectory sampling, PETS's defaults."""

    name = "pets"
    Config = PETSConfig
