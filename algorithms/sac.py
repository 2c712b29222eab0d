"""``sac``: model-free Soft Actor-Critic (Haarnoja et al. 2018b), the baseline of every MBRL plot.

The loop of :class:`~algorithms.agents.off_policy.OffPolicyAgent`. Per env step: act (uniform
random for the first ``initial_random_steps`` steps, then a sample from
the policy), store the transition, and once ``initial_random_steps`` transitions are stored take
``updates_per_step`` gradient steps of :class:`~algorithms.learners.sac.SACLearner` on uniform
minibatches from the replay buffer. Bootstrapping stops only on ``terminated``; time-limit
truncations bootstrap as usual. Evaluation (``explore=False``) uses the deterministic
``tanh(mean)`` action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from algorithms.agents.off_policy import OffPolicyAgent
from algorithms.api import (
    AlgoConfig,
    NonNegativeInt,
    PositiveInt,
)
from algorithms.learners.sac import SACLearner, SACLearnerConfig
from envs.spec import TaskSpec


@dataclass(frozen=True)
class SACConfig(SACLearnerConfig, AlgoConfig):
    """SAC hyperparameters: the learner's (:class:`~algorithms.learners.sac.SACLearnerConfig`,
    Haarnoja et al. 2018b Table 1 and softlearning, ``examples/development/variants.py``) and the
    replay and update schedule below."""

    renamed: ClassVar[Mapping[str, str]] = {"learning_starts": "initial_random_steps"}

    buffer_size: PositiveInt = 1_000_000
    """Replay capacity (Table 1: 1e6). Capped at the trial's step budget, which it never exceeds."""
    initial_random_steps: NonNegativeInt = 1000
    """Env steps of uniform random actions before the first update (softlearning
    ``n_initial_exploration_steps = int(1e3)``; many codes use 5000-10000 for MuJoCo, which would
    spend a third of a 15k-step Pendulum budget on random play)."""
    updates_per_step: PositiveInt = 1
    """Gradient steps per env step (Table 1: 1 gradient step, 1 env step per iteration)."""


class SACAgent(OffPolicyAgent):
    """The ``sac`` plugin: replay buffer + :class:`SACLearner`
    (:class:`~algorithms.agents.off_policy.OffPolicyAgent`'s loop)."""

    name = "sac"
    Config = SACConfig
    Learner = SACLearner

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """``target_entropy``: ``-|A|`` of the task when left ``None``."""
        assert isinstance(config, SACConfig)
        if config.target_entropy is not None:
            return config
        return dataclasses.replace(config, target_entropy=-float(task.act_dim))
