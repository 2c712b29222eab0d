"""``mbpo``: Model-Based Policy Optimization (Janner et al. 2019, "When to Trust Your Model").

A probabilistic ensemble is fitted to the real data; short model rollouts *branched from real
states* fill a model buffer; SAC learns from minibatches that are mostly model data. Learned models
generalize well one step ahead, but their errors compound, so MBPO keeps rollouts short (``k`` from
a per-task schedule) and starts them everywhere in the real replay buffer.

The loop, as in the official code (jannerm/mbpo ``mbpo/algorithms/mbpo.py``):

1. ``initial_random_steps`` uniform random env steps;
2. every ``model.train_every`` env steps (the code's ``model_train_freq``): refit the ensemble
   on all real data (holdout early stopping), set ``k`` from ``rollout_schedule`` and the epoch
   (``epoch_length`` env steps after the random phase), and roll ``rollouts_per_step *
   model.train_every`` start states sampled from the real buffer ``k`` steps forward under the
   current stochastic policy (one batched ensemble call per step, a random elite per row, the
   task's termination function ending rollouts) into the model buffer, which keeps
   ``model_retain_epochs`` epochs of rollouts;
3. every env step: ``updates_per_step`` SAC updates on batches of ``sac.batch_size`` with a
   fraction ``real_ratio`` of real transitions and the rest from the model buffer.

Before each refit the current model is scored on the real transitions it has not seen yet
(``model_err_h{k}``, :mod:`algorithms.models.diagnostics`): the compounding-error curve of the run.

Paper (Table 3 / Appendix C) and official code disagree in places; we follow the code and say so:
the rollout schedules of Hopper (paper ``[20, 100, 1, 15]``, code ``[20, 150, 1, 15]``), Walker2d
and HalfCheetah (the length is 1 either way) and Humanoid (paper ends at 25, code at 20); the
initial exploration (``examples/development/base.py`` sets 5000 random steps for MBPO, which
overrides the 500 written in the InvertedPendulum config because of the update order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from algorithms.agents.model_based_sac import ModelBasedSAC, ModelBasedSACConfig
from algorithms.api import (
    AlgoConfig,
    NonNegativeInt,
    PositiveInt,
    RunContext,
    UnitInterval,
    apply_overrides,
    config_value,
)
from algorithms.planners.rollout import imagine_steps
from algorithms.replay.buffer import Batch, ReplayBuffer
from envs.spec import TaskSpec

#: Per-task values of the official configs (jannerm/mbpo ``examples/config/<task>/0.py``), by
#: dotted config path, used where the config leaves the field ``None``.
MBPO_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "inverted_pendulum": {
        "updates_per_step": 10,
        "epoch_length": 250,
        "rollout_schedule": (1, 15, 1, 1),
        "sac.target_entropy": -0.05,
    },
    "hopper": {"rollout_schedule": (20, 150, 1, 15), "sac.target_entropy": -1.0},
    "walker2d": {"rollout_schedule": (20, 150, 1, 1), "sac.target_entropy": -3.0},
    "halfcheetah": {
        "updates_per_step": 40,
        "rollout_schedule": (20, 150, 1, 1),
        "sac.target_entropy": -3.0,
    },
    "ant": {"rollout_schedule": (20, 100, 1, 25), "sac.target_entropy": -4.0},
    "humanoid": {
        "rollout_schedule": (20, 300, 1, 20),
        "sac.target_entropy": -2.0,
        "model.hidden": 400,
        "model.train_every": 1000,
        "model_retain_epochs": 5,
    },
}

#: Values for tasks the official code has no config for (its ``MBPO.__init__`` defaults and the
#: common values of its configs).
GENERIC_DEFAULTS: dict[str, Any] = {
    "updates_per_step": 20,
    "epoch_length": 1000,
    "rollout_schedule": (20, 100, 1, 1),
    "model.hidden": 200,
    "model.train_every": 250,
    "model_retain_epochs": 1,
}


@dataclass(frozen=True)
class MBPOConfig(ModelBasedSACConfig):
    """MBPO hyperparameters: the model-based SAC fields
    (:class:`~algorithms.agents.model_based_sac.ModelBasedSACConfig`, MBPO's defaults: ``sac``,
    ``model``) and the model rollouts. "Code" is jannerm/mbpo (``examples/config/<task>/0.py``,
    ``examples/development/base.py``, ``mbpo/models/constructor.py``, ``mbpo/models/bnn.py``);
    "paper" is Janner et al. 2019, Appendix C. ``None`` fields take the code's per-task value
    (:data:`MBPO_TASK_DEFAULTS`), ``sac.target_entropy`` included (InvertedPendulum -0.05,
    Hopper -1, Walker2d and HalfCheetah -3, Ant -4, Humanoid -2; ``-|A|`` elsewhere)."""

    renamed: ClassVar[Mapping[str, str]] = {
        **ModelBasedSACConfig.renamed,
        "rollout_deterministic": "sample",  # inverted: sample=false rolls out the mean
    }

    real_ratio: UnitInterval = 0.05
    """Fraction of each SAC batch drawn from real data (code ``real_ratio: 0.05``)."""

    # ---- model rollouts ----
    epoch_length: PositiveInt | None = None
    """Env steps per epoch, the unit of ``rollout_schedule`` and ``model_retain_epochs`` (code
    ``epoch_length``: 1000; InvertedPendulum 250)."""
    rollouts_per_step: PositiveInt = 400
    """Model rollouts per env step, generated in one batch of ``rollouts_per_step *
    model.train_every`` at each refit (code ``rollout_batch_size: 100e3`` per 250 steps)."""
    rollout_schedule: tuple[NonNegativeInt, NonNegativeInt, PositiveInt, PositiveInt] | None = None
    """``[start_epoch, end_epoch, start_len, end_len]``: ``k`` grows linearly between the epochs
    (code ``rollout_schedule``; Hopper ``[20, 150, 1, 15]``, Walker2d and HalfCheetah
    ``[20, 150, 1, 1]``, Ant ``[20, 100, 1, 25]``, Humanoid ``[20, 300, 1, 20]``,
    InvertedPendulum ``[1, 15, 1, 1]``)."""
    model_retain_epochs: PositiveInt | None = None
    """Epochs of model rollouts the model buffer keeps (code ``model_retain_epochs``: 1;
    Humanoid 5)."""
    sample: bool = True
    """Sample the model's Gaussian next state in rollouts (code ``deterministic: False``);
    ``False``: its mean. The MPC planners' ``sample``, same meaning."""

    def for_task(self, task: TaskSpec) -> MBPOConfig:
        """This config with every ``None`` field filled in for ``task``: the code's per-task
        values, ``-|A|`` as the entropy target of a task it has no config for, the model's
        default weight decays."""
        table = {
            **GENERIC_DEFAULTS,
            "sac.target_entropy": -float(task.act_dim),
            **MBPO_TASK_DEFAULTS.get(task.name, {}),
        }
        cfg = apply_overrides(
            self, {k: v for k, v in table.items() if config_value(self, k) is None}
        )
        return dataclasses.replace(cfg, model=cfg.model.for_task(task))


class MBPOAgent(ModelBasedSAC):
    """The ``mbpo`` plugin: :class:`~algorithms.agents.model_based_sac.ModelBasedSAC` with
    branched model rollouts after every refit (:meth:`after_fit`) and SAC batches that are mostly
    model data (:meth:`sample_batches`). ``dyna`` (:mod:`algorithms.dyna`) changes where rollouts
    start and how long they run (:meth:`rollout_starts`, :meth:`rollout_length`)."""

    name = "mbpo"
    Config = MBPOConfig

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """The code's per-task values (:meth:`MBPOConfig.for_task`)."""
        assert isinstance(config, MBPOConfig)
        return config.for_task(task)

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        assert isinstance(self.cfg, MBPOConfig)
        self.model_buffer: ReplayBuffer | None = None  # sized at the first rollout
        self.k = 0

    # ------------------------------------------------------------------ schedule
    @property
    def epoch(self) -> int:
        """Epochs completed since the random phase (the code's ``self._epoch``)."""
        assert self.cfg.epoch_length is not None
        return max(0, self.env_steps - self.cfg.initial_random_steps) // self.cfg.epoch_length

    def rollout_length(self) -> int:
        """``k`` for the current epoch: the code's ``_set_rollout_length``."""
        assert self.cfg.rollout_schedule is not None
        e0, e1, k0, k1 = self.cfg.rollout_schedule
        if self.epoch <= e0:
            return int(k0)
        frac = min((self.epoch - e0) / max(e1 - e0, 1), 1.0)
        return int(frac * (k1 - k0) + k0)

    def rollout_starts(self, n: int) -> tuple[torch.Tensor, np.ndarray | None]:
        """``[n, O]`` start states: uniform over the real buffer (MBPO's branching); and their
        ``[n, S]`` simulator states for oracle rollouts on a MuJoCo task (else ``None``)."""
        rows = self.buffer.sample_indices(n)
        return self.buffer.get(rows).obs.to(self.ctx.device), self.sim_states(rows)

    def model_buffer_capacity(self, k: int) -> int:
        """The code's ``_reallocate_model_pool``: retain epochs x rollouts per epoch x ``k``."""
        cfg = self.cfg
        assert cfg.epoch_length is not None and cfg.model_retain_epochs is not None
        return cfg.model_retain_epochs * cfg.rollouts_per_step * cfg.epoch_length * k

    def base_length(self, k: int) -> int:
        """The ``k`` the model buffer is sized for (Dyna sizes it for one step per rollout)."""
        return k

    def num_rollouts(self, n: int, k: int) -> int:
        """How many rollouts to start for a budget of ``n`` (MBPO: ``n`` rollouts of ``k`` steps)."""
        return n

    # ------------------------------------------------------------------ model data
    def after_fit(self) -> dict[str, float]:
        """After each refit: the branched rollouts (:meth:`rollout_model`)."""
        return self.rollout_model()

    def _resize_model_buffer(self, capacity: int) -> ReplayBuffer:
        old = self.model_buffer
        if old is not None and old.capacity == capacity:
            return old
        new = ReplayBuffer(capacity, self.task.obs_dim, self.task.act_dim, self.ctx.np_rng)
        if old is not None and len(old):
            order = (np.arange(old.size) + (old.ptr if old.size == old.capacity else 0)) % (
                old.capacity
            )  # oldest first
            new.add_batch(
                old.obs[order],
                old.act[order],
                old.reward[order],
                old.next_obs[order],
                old.terminated[order],
            )
        self.model_buffer = new
        return new

    @torch.no_grad()
    def rollout_model(self) -> dict[str, float]:
        """Branched rollouts of the current policy in the model (one batched ensemble call per
        step, a random elite per row, rollouts ending at the task's termination; the true model
        with ``oracle``), streamed into the model buffer."""
        cfg, task = self.cfg, self.task
        assert cfg.model.train_every is not None
        self.k = k = self.rollout_length()
        buf = self._resize_model_buffer(self.model_buffer_capacity(self.base_length(k)))
        n = cfg.rollouts_per_step * cfg.model.train_every
        obs, sims = self.rollout_starts(self.num_rollouts(n, k))
        step_fn = self.imagination(sample=cfg.sample, sim_states=sims)
        added = 0
        for step in imagine_steps(
            step_fn,
            obs,
            lambda o: self.learner.act(o, deterministic=False),
            k,
            reward_fn=task.reward_fn,
            termination_fn=self.data.termination_fn,
        ):
            buf.add_batch(step.obs, step.act, step.reward, step.next_obs, step.terminated.float())
            added += len(step.obs)
        return {
            "rollout_length": float(k),
            "rollout_mean_steps": added / max(len(obs), 1),
            "model_buffer_size": float(len(buf)),
        }

    def sample_batches(self, g: int) -> Batch:
        """``G`` minibatches at once, ``[G, B, ...]``: ``real_ratio`` real, the rest model data."""
        bs, model = self.learner_cfg.batch_size, self.model_buffer
        n_real = int(bs * self.cfg.real_ratio) if model is not None and len(model) else bs
        parts = [self.buffer.sample(g * n_real)]
        if n_real < bs:
            assert model is not None
            parts.append(model.sample(g * (bs - n_real)))

        def join(i: int) -> torch.Tensor:
            xs = [p[i].reshape(g, -1, *p[i].shape[1:]) for p in parts]
            return torch.cat(xs, dim=1) if len(xs) > 1 else xs[0]

        return Batch(*(join(i) for i in range(5)))

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "model_buffer": None if self.model_buffer is None else self.model_buffer.state_dict(),
            "model_buffer_capacity": 0 if self.model_buffer is None else self.model_buffer.capacity,
            "k": self.k,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if state["model_buffer"] is not None:
            buf = self._resize_model_buffer(int(state["model_buffer_capacity"]))
            buf.load_state_dict(state["model_buffer"])
        self.k = int(state["k"])
