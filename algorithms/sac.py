"""``sac``: model-free Soft Actor-Critic (Haarnoja et al. 2018b), the baseline of every MBRL plot.

Per env step: act (uniform random for the first ``initial_random_steps`` steps, then a sample from
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
from typing import Any, ClassVar

import numpy as np

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    NonNegativeInt,
    PositiveInt,
    RunContext,
    Transition,
)
from algorithms.learners.sac import SACLearner, SACLearnerConfig
from algorithms.replay.buffer import ReplayBuffer
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
            config,
            ctx.device,
            ctx.torch_gen,
            obs_dims=task.policy_obs_dims,
        )
        self.buffer = ReplayBuffer.for_trial(config.buffer_size, task.obs_dim, task.act_dim, ctx)
        self.env_steps = 0
        self.value_discount = config.gamma

    def state_value(self, obs: np.ndarray) -> float:
        """The critics at ``obs`` under the deterministic policy (:meth:`SACLearner.state_value`)."""
        return self.learner.state_value(obs)

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """``obs [O]`` -> action ``[A]`` (float32, env units, within the bounds)."""
        if explore and self.env_steps < self.config.initial_random_steps:
            return self.random_action()
        return self.learner.act_one(obs, deterministic=not explore)

    def observe(self, transition: Transition) -> None:
        """Store the step; ``terminated`` (never ``truncated``) stops bootstrapping."""
        self.buffer.add(transition)
        self.env_steps += 1

    def update(self) -> Mapping[str, float]:
        """``updates_per_step`` SAC steps once ``initial_random_steps`` transitions are stored."""
        if self.env_steps < self.config.initial_random_steps or len(self.buffer) == 0:
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
