"""``sac``: model-free Soft Actor-Critic (Haarnoja et al. 2018b), the baseline of every MBRL plot.

Per env step: act (uniform random for the first ``learning_starts`` steps, then a sample from the
policy), store the transition, and once ``learning_starts`` transitions are stored take
``updates_per_step`` gradient steps of :class:`~algorithms.learners.sac.SACLearner` on uniform
minibatches from the replay buffer. Bootstrapping stops only on ``terminated``; time-limit
truncations bootstrap as usual. Evaluation (``explore=False``) uses the deterministic
``tanh(mean)`` action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    RunContext,
    Transition,
)
from algorithms.learners.sac import SACLearner, SACLearnerConfig
from algorithms.replay.buffer import ReplayBuffer
from envs.spec import TaskSpec


@dataclass(frozen=True)
class SACConfig(AlgoConfig):
    """SAC hyperparameters. "Table 1" is Haarnoja et al. 2018b ("Soft Actor-Critic Algorithms
    and Applications", arXiv:1812.05905), "softlearning" its official code
    (``examples/development/variants.py``)."""

    lr: PositiveFloat = 3e-4
    """Adam learning rate of actor, critics and temperature (Table 1: 3e-4)."""
    gamma: PositiveFraction = 0.99
    """Discount (Table 1: 0.99)."""
    tau: PositiveFraction = 0.005
    """Polyak coefficient of the target critics, every gradient step (Table 1: 0.005, target
    update interval 1)."""
    batch_size: PositiveInt = 256
    """Minibatch size (Table 1: 256)."""
    hidden: PositiveInt = 256
    """Hidden units per layer of actor and critics (Table 1: 256)."""
    layers: NonNegativeInt = 2
    """Hidden ReLU layers of actor and critics (Table 1: 2)."""
    target_entropy: float | None = None
    """Temperature target entropy; ``None`` = ``-|A|`` (Table 1: -dim(A); softlearning
    ``target_entropy='auto'``)."""
    init_alpha: PositiveFloat = 1.0
    """Initial temperature (softlearning initialises ``log_alpha`` to 0)."""
    autotune_alpha: bool = True
    """Learn the temperature (Haarnoja et al. 2018b, Sec. 5); False keeps ``init_alpha``."""
    buffer_size: PositiveInt = 1_000_000
    """Replay capacity (Table 1: 1e6). Capped at the trial's step budget, which it never exceeds."""
    learning_starts: NonNegativeInt = 1000
    """Env steps of uniform random actions before the first update (softlearning
    ``n_initial_exploration_steps = int(1e3)``; many codes use 5000-10000 for MuJoCo, which would
    spend a third of a 15k-step Pendulum budget on random play)."""
    updates_per_step: PositiveInt = 1
    """Gradient steps per env step (Table 1: 1 gradient step, 1 env step per iteration)."""
    bf16: bool = False
    """bfloat16 autocast of the network passes (losses stay float32). Not in the paper; off."""


class SACAgent(Algorithm):
    """The ``sac`` plugin: replay buffer + :class:`SACLearner`, one update per env step."""

    name = "sac"
    Config = SACConfig
    requires = frozenset({Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """``target_entropy``: ``-|A|`` of the task when left ``None``."""
        assert isinstance(config, SACConfig)
        if config.target_entropy is not None:
            return config
        return dataclasses.replace(config, target_entropy=-float(task.act_dim))

    def __init__(self, task: TaskSpec, config: SACConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        self.learner = SACLearner(
            task.obs_dim,
            task.act_dim,
            task.act_low,
            task.act_high,
            SACLearnerConfig.from_config(config),
            ctx.device,
            ctx.torch_gen,
            obs_dims=task.policy_obs_dims,
        )
        self.buffer = ReplayBuffer.for_trial(config.buffer_size, task.obs_dim, task.act_dim, ctx)
        self.env_steps = 0

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """``obs [O]`` -> action ``[A]`` (float32, env units, within the bounds)."""
        if explore and self.env_steps < self.config.learning_starts:
            return self.random_action()
        return self.learner.act_one(obs, deterministic=not explore)

    def observe(self, transition: Transition) -> None:
        """Store the step; ``terminated`` (never ``truncated``) stops bootstrapping."""
        self.buffer.add(transition)
        self.env_steps += 1

    def update(self) -> Mapping[str, float]:
        """``updates_per_step`` SAC steps once ``learning_starts`` transitions are stored."""
        if self.env_steps < self.config.learning_starts or len(self.buffer) == 0:
            return {}
        metrics: Mapping[str, float] = {}
        for _ in range(self.config.updates_per_step):
            metrics = self.learner.update(self.buffer.sample(self.config.batch_size))
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        self.env_steps = int(state["env_steps"])
