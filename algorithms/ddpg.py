"""``ddpg``: model-free Deep Deterministic Policy Gradient (Lillicrap et al. 2016), the suite's
second model-free reference and the value-expansion papers' base.

The loop of :class:`~algorithms.agents.off_policy.OffPolicyAgent` (the ``sac`` plugin's) with
:class:`~algorithms.learners.ddpg.DDPGLearner`: uniform random actions for the first
``initial_random_steps`` steps, then the deterministic actor plus Gaussian noise, one update per
env step on uniform minibatches; evaluation without noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.agents.off_policy import OffPolicyAgent
from algorithms.api import AlgoConfig, NonNegativeInt, PositiveInt
from algorithms.learners.ddpg import DDPGLearner, DDPGLearnerConfig


@dataclass(frozen=True)
class DDPGConfig(DDPGLearnerConfig, AlgoConfig):
    """DDPG hyperparameters: the learner's (:class:`~algorithms.learners.ddpg.DDPGLearnerConfig`,
    CleanRL's ``ddpg_continuous_action.py``) and the replay and update schedule below."""

    buffer_size: PositiveInt = 1_000_000
    """Replay capacity (CleanRL and Lillicrap: 1e6). Capped at the trial's step budget."""
    initial_random_steps: NonNegativeInt = 1000
    """Env steps of uniform random actions before the first update. CleanRL waits 25k steps
    (``learning_starts``, MuJoCo budgets of 1M); 1000 here, as the ``sac`` plugin, so the two
    model-free references share their random phase on short budgets."""
    updates_per_step: PositiveInt = 1
    """Gradient steps per env step (CleanRL and Lillicrap: 1; CleanRL's actor trains every second
    step, ``policy_frequency: 2``, a TD3 device not used here)."""


class DDPGAgent(OffPolicyAgent):
    """The ``ddpg`` plugin: replay buffer + :class:`DDPGLearner`."""

    name = "ddpg"
    Config = DDPGConfig
    Learner = DDPGLearner
