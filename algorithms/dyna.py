"""``dyna``: Dyna-style model-based data generation (Sutton 1990) in MBPO's machinery.

Everything is :mod:`algorithms.mbpo` (ensemble, SAC on a mix of real and model data, refits every
``model.train_every`` steps) except the rollouts: classic Dyna simulates *whole episodes* from the
initial-state distribution (here the empirical one: the first observation of every real training
episode), ``rollout_horizon`` steps long (default: the task's episode length), instead of MBPO's
short rollouts branched from every real state. Each refit generates the same number of model
transitions as MBPO does at ``k = 1`` (``rollouts_per_step * model.train_every``), spread over
``ceil(that / rollout_horizon)`` rollouts, into a model buffer of the same size.

This is the contrast the MBPO post draws: with long rollouts the policy trains on states the model
reaches only through compounded errors. Compare the two plugins' ``model_err_h{k}`` and returns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algorithms.api import AlgoConfig, PositiveInt, RunContext, Transition
from algorithms.mbpo import MBPOAgent, MBPOConfig
from envs.spec import TaskSpec


@dataclass(frozen=True)
class DynaConfig(MBPOConfig):
    """MBPO's hyperparameters (:class:`~algorithms.mbpo.MBPOConfig`, same sources) plus the
    length of Dyna's full-episode rollouts. ``rollout_schedule`` is not used."""

    rollout_horizon: PositiveInt | None = None
    """Steps per model rollout from an initial state. ``None``: the task's episode length (a
    whole simulated episode, as in Dyna), resolved per task."""


class DynaAgent(MBPOAgent):
    """The ``dyna`` plugin: MBPO with full-length rollouts from initial states."""

    name = "dyna"
    Config = DynaConfig

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """MBPO's per-task values, and the task's episode length as ``rollout_horizon``."""
        cfg = super().resolve_config(task, config)
        assert isinstance(cfg, DynaConfig)
        if cfg.rollout_horizon is None:
            cfg = dataclasses.replace(cfg, rollout_horizon=task.max_episode_steps)
        return cfg

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        self._starts: list[np.ndarray] = []
        self._start_sims: list[np.ndarray] = []  # their simulator states (simulator oracle)
        self._new_episode = True

    def observe(self, transition: Transition) -> None:
        if self._new_episode:
            self._starts.append(np.asarray(transition.obs, np.float32).reshape(-1))
            if self.simulator is not None:
                assert transition.sim_state is not None
                self._start_sims.append(np.asarray(transition.sim_state, np.float64))
        self._new_episode = bool(transition.terminated or transition.truncated)
        super().observe(transition)

    def rollout_length(self) -> int:
        assert isinstance(self.cfg, DynaConfig)
        return self.cfg.rollout_horizon or self.task.max_episode_steps

    def base_length(self, k: int) -> int:
        return 1  # same model-data budget (and buffer) as MBPO at k = 1

    def num_rollouts(self, n: int, k: int) -> int:
        return math.ceil(n / k)

    def rollout_starts(self, n: int) -> tuple[torch.Tensor, np.ndarray | None]:
        """``[n, O]`` initial states drawn uniformly from the real episodes' first states (and
        their simulator states for the simulator oracle)."""
        starts = np.stack(self._starts)
        idx = self.ctx.np_rng.integers(0, len(starts), size=n)
        sims = np.stack(self._start_sims)[idx] if self._start_sims else None
        return torch.as_tensor(starts[idx], device=self.ctx.device), sims

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "starts": np.stack(self._starts) if self._starts else None,
            "start_sims": np.stack(self._start_sims) if self._start_sims else None,
            "new_episode": self._new_episode,
        }

    def load_state_dict(self, state: Any) -> None:
        super().load_state_dict(state)
        starts = state["starts"]
        self._starts = [] if starts is None else list(starts)
        sims = state["start_sims"]
        self._start_sims = [] if sims is None else list(sims)
        self._new_episode = bool(state["new_episode"])
