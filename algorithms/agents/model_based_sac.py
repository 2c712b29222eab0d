"""The model-based SAC agent: a SAC learner next to a learned dynamics model, the base of the
families that learn a policy from model data (MBPO, Dyna) or with model-based targets (MVE,
STEVE).

What the base does, per env step (the loop of MBPO's official code, jannerm/mbpo
``mbpo/algorithms/mbpo.py``):

1. ``initial_random_steps`` uniform random env steps, then the SAC policy;
2. every real transition goes to the :class:`~algorithms.models.data_loop.LearnedModel` (replay of
   real data, held-out error probe); it refits the ensemble at the end of the random phase and
   every ``model_train_freq`` env steps after it, and returns the refit's statistics at that step;
3. after each refit, :meth:`ModelBasedSAC.after_fit` (MBPO: branched rollouts into a model buffer);
4. every env step after the random phase, ``updates_per_step`` SAC updates
   (:meth:`ModelBasedSAC.train_policy`) on the minibatches of :meth:`ModelBasedSAC.sample_batches`
   (default: real data only) with the critic targets of :meth:`ModelBasedSAC.critic_targets`
   (default: ``None``, SAC's one-step soft TD target).

A family overrides the hooks it changes: MBPO ``after_fit`` and ``sample_batches``; value expansion
``critic_targets`` (k-step targets from :func:`algorithms.planners.rollout.imagine`); STEVE also
:meth:`~algorithms.models.ensemble.ProbabilisticEnsemble.step_members`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    Range,
    RunContext,
    Transition,
)
from algorithms.learners.sac import SACLearner, SACLearnerConfig
from algorithms.models.data_loop import LearnedModel
from algorithms.models.ensemble import EnsembleConfig, ProbabilisticEnsemble
from algorithms.replay.buffer import Batch, ReplayBuffer
from envs.spec import TaskSpec


@dataclass(frozen=True)
class ModelBasedSACConfig(AlgoConfig):
    """The fields every model-based SAC agent has. Defaults are MBPO's: "code" is jannerm/mbpo
    (``examples/config/<task>/0.py``, ``examples/development/base.py``,
    ``mbpo/models/constructor.py``, ``mbpo/models/bnn.py``); a family with other sources
    redeclares the field with its own default and docstring. ``None`` fields are decided per task
    by the plugin's ``resolve_config``."""

    # ---- SAC (the fields of SACLearnerConfig, same names) ----
    lr: PositiveFloat = 3e-4
    """Adam learning rate of actor, critics and temperature (code ``base.py``: 3e-4)."""
    gamma: PositiveFraction = 0.99
    """Discount (code configs ``discount: 0.99``)."""
    tau: PositiveFraction = 0.005
    """Polyak coefficient of the target critics (code ``tau: 5e-3``, update interval 1)."""
    batch_size: PositiveInt = 256
    """SAC minibatch (code ``sampler_params.batch_size: 256``)."""
    hidden: PositiveInt = 256
    """Hidden units of actor and critics (code ``base.py`` ``M = 256``)."""
    layers: NonNegativeInt = 2
    """Hidden layers of actor and critics (code ``(M, M)``)."""
    target_entropy: float | None = None
    """Temperature target. ``None``: the plugin's per-task value, else ``-|A|``."""
    init_alpha: PositiveFloat = 1.0
    """Initial temperature (softlearning: ``log_alpha = 0``)."""
    autotune_alpha: bool = True
    """Learn the temperature (code: SAC with automatic entropy tuning)."""
    bf16: bool = False
    """bfloat16 autocast of SAC's network passes (losses stay float32). Not in the paper."""
    updates_per_step: PositiveInt | None = None
    """SAC gradient steps per env step, G (code ``n_train_repeat``: 20; HalfCheetah 40;
    InvertedPendulum 10)."""
    buffer_size: PositiveInt = 1_000_000
    """Real replay capacity (code ``SimpleReplayPool`` ``max_size: 1e6``)."""
    initial_random_steps: NonNegativeInt = 5000
    """Uniform random env steps before model and SAC training (code ``base.py``
    ``n_initial_exploration_steps: 5000`` for MBPO)."""
    model_train_freq: PositiveInt | None = None
    """Refit the model every this many env steps (code ``model_train_freq``: 250; Humanoid
    1000)."""

    # ---- dynamics model ----
    ensemble_size: PositiveInt = 7
    """Ensemble members (code ``num_networks: 7``)."""
    num_elites: PositiveInt = 5
    """Elites by holdout MSE, used for rollouts (code ``num_elites: 5``)."""
    model_hidden: PositiveInt | None = None
    """Hidden units per model layer (code ``hidden_dim``: 200; Humanoid 400)."""
    model_layers: NonNegativeInt = 4
    """Hidden layers of the model (code ``construct_model``: 4, swish)."""
    model_lr: PositiveFloat = 1e-3
    """Model Adam learning rate (code ``construct_model``: 0.001)."""
    model_batch_size: PositiveInt = 256
    """Model minibatch per member (code ``_train_model(batch_size=256)``)."""
    model_weight_decays: tuple[NonNegativeFloat, ...] | None = None
    """Per-layer L2; ``None``: the code's ``(2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)`` (a linear
    ramp between the same end points for other than 4 layers), resolved per task."""
    holdout_ratio: Annotated[float, Range(ge=0, lt=1)] = 0.2
    """Holdout fraction for early stopping and elites (code ``holdout_ratio=0.2``, capped at
    5000 transitions)."""
    model_max_epochs: NonNegativeInt = 0
    """Cap on epochs per refit; 0: no cap, early stopping only (code ``max_epochs=None``)."""
    model_bf16: bool = False
    """bf16 autocast of the model's passes (training and rollouts). Not in the paper."""
    learn_reward: bool = True
    """The model predicts the reward (code: ``[reward, delta_obs]`` targets). ``False`` scores
    rollouts with the task's ``reward_fn`` instead."""
    model_error_horizons: tuple[PositiveInt, ...] = (1, 5, 10, 25)
    """Horizons of the held-out model-error diagnostic ``model_err_h{k}`` (not in the paper)."""

    def ensemble_config(self) -> EnsembleConfig:
        assert self.model_hidden is not None, "resolve the config for a task first"
        return EnsembleConfig.from_plugin(self, hidden=self.model_hidden, layers=self.model_layers)


class ModelBasedSAC(Algorithm):
    """SAC learner + :class:`~algorithms.models.data_loop.LearnedModel`; see the module
    docstring for the loop and the hooks a family overrides."""

    Config = ModelBasedSACConfig
    requires = frozenset({Capability.CONTINUOUS_ACTIONS, Capability.TERMINATION_FN})

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        assert isinstance(config, ModelBasedSACConfig)
        if config.learn_reward:
            return cls.requires
        return cls.requires | {Capability.REWARD_FN}

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        cfg = self.resolve_config(task, config)  # a no-op on a resolved config
        assert isinstance(cfg, ModelBasedSACConfig)
        self.cfg = cfg
        self.learner = SACLearner(
            task.obs_dim,
            task.act_dim,
            task.act_low,
            task.act_high,
            SACLearnerConfig.from_config(cfg),
            ctx.device,
            ctx.torch_gen,
            obs_dims=task.policy_obs_dims,
        )
        assert cfg.model_train_freq is not None
        self.data = LearnedModel(
            task,
            cfg.ensemble_config(),
            ctx,
            buffer_size=cfg.buffer_size,
            error_horizons=cfg.model_error_horizons,
            initial_random_steps=cfg.initial_random_steps,
            fit_every=cfg.model_train_freq,
            fit_at_episode_end=False,
            report="update",
        )

    @property
    def model(self) -> ProbabilisticEnsemble:
        """The learned dynamics model (:attr:`LearnedModel.model`)."""
        return self.data.model

    @property
    def buffer(self) -> ReplayBuffer:
        """The real transitions (:attr:`LearnedModel.buffer`)."""
        return self.data.buffer

    @property
    def env_steps(self) -> int:
        return self.data.env_steps

    # ------------------------------------------------------------------ acting
    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """``obs [O]`` -> ``[A]``: uniform random during the first ``initial_random_steps``, then
        a policy sample (``explore``) or ``tanh(mean)``."""
        if explore and self.data.random_phase:
            return self.random_action()
        return self.learner.act_one(obs, deterministic=not explore)

    def observe(self, transition: Transition) -> None:
        self.data.observe(transition)

    # ------------------------------------------------------------------ learning
    def update(self) -> Mapping[str, float]:
        """Refit on schedule (then :meth:`after_fit`); then ``G`` SAC updates."""
        if self.data.random_phase:
            return {}
        metrics = dict(self.data.update())
        if self.data.fitted_now:
            metrics.update(self.after_fit())
        metrics.update(self.train_policy())
        return metrics

    def after_fit(self) -> dict[str, float]:
        """Called right after each refit (MBPO: model rollouts). Returns metrics to log."""
        return {}

    def sample_batches(self, g: int) -> Batch:
        """``G`` SAC minibatches at once, ``[G, B, ...]``. Default: real transitions only."""
        b = self.buffer.sample(g * self.cfg.batch_size)
        return Batch(*(x.reshape(g, self.cfg.batch_size, *x.shape[1:]) for x in b))

    def critic_targets(self, batch: Batch) -> torch.Tensor | None:
        """``[B]`` critic regression targets for ``batch``; ``None``: SAC's one-step soft TD
        target (value expansion returns its k-step targets here)."""
        return None

    def train_policy(self) -> dict[str, float]:
        """``G`` SAC updates, their minibatches gathered in one go."""
        g = self.cfg.updates_per_step
        assert g is not None
        batches = self.sample_batches(g)
        metrics: dict[str, float] = {}
        for i in range(g):
            batch = Batch(*(x[i] for x in batches))
            metrics = self.learner.update(batch, self.critic_targets(batch))
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "data": self.data.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.data.load_state_dict(state["data"])
