"""The model-free off-policy agent: a replay buffer and an actor-critic learner
(:class:`~algorithms.learners.base.ActorCriticLearner`), the loop of the ``sac`` and ``ddpg``
plugins.

Per env step: act (uniform random for the first ``initial_random_steps`` steps, then the
learner's exploration policy), store the transition, and once ``initial_random_steps`` transitions
are stored take ``updates_per_step`` gradient steps on uniform minibatches from the replay buffer.
Bootstrapping stops only on ``terminated``; time-limit truncations bootstrap as usual. Evaluation
(``explore=False``) uses the learner's deterministic action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from algorithms.api import AlgoConfig, Algorithm, Capability, RunContext, Transition
from algorithms.learners.base import ActorCriticLearner
from algorithms.replay.buffer import ReplayBuffer
from envs.spec import TaskSpec


class OffPolicyAgent(Algorithm):
    """Replay buffer + learner. The config has the learner's fields (flat: ``sac.lr``) and
    ``buffer_size``, ``initial_random_steps``, ``updates_per_step``, ``batch_size``, ``gamma``."""

    requires = frozenset({Capability.CONTINUOUS_ACTIONS})
    Learner: ClassVar[type[ActorCriticLearner]]
    """The learner class; it takes the plugin's (flat) config as its own."""

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        cfg: Any = config
        self.learner = self.Learner(
            task.obs_dim,
            task.act_dim,
            task.act_low,
            task.act_high,
            cfg,
            ctx.device,
            ctx.torch_gen,
            obs_dims=task.policy_obs_dims,
        )
        self.buffer = ReplayBuffer.for_trial(cfg.buffer_size, task.obs_dim, task.act_dim, ctx)
        self.env_steps = 0
        self.value_discount = cfg.gamma

    def state_value(self, obs: np.ndarray) -> float:
        """The critics at ``obs`` under the deterministic policy (the learner's
        ``state_value``)."""
        return self.learner.state_value(obs)

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """``obs [O]`` -> action ``[A]`` (float32, env units, within the bounds)."""
        cfg: Any = self.config
        if explore and self.env_steps < cfg.initial_random_steps:
            return self.random_action()
        return self.learner.act_one(obs, deterministic=not explore)

    def observe(self, transition: Transition) -> None:
        """Store the step; ``terminated`` (never ``truncated``) stops bootstrapping."""
        self.buffer.add(transition)
        self.env_steps += 1

    def update(self) -> Mapping[str, float]:
        """``updates_per_step`` learner steps once ``initial_random_steps`` transitions are
        stored."""
        cfg: Any = self.config
        if self.env_steps < cfg.initial_random_steps or len(self.buffer) == 0:
            return {}
        metrics: Mapping[str, float] = {}
        for _ in range(cfg.updates_per_step):
            metrics = self.learner.update(self.buffer.sample(cfg.batch_size))
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
