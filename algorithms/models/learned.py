"""The data side of every learned-model plugin: :class:`LearnedModel` holds the ensemble, the
replay of real transitions, the held-out model-error probe and the refit schedule. The MPC plugins
(:mod:`algorithms.agents.mpc`), iLQG (:mod:`algorithms.ilqg`) and the model-based SAC agents
(:mod:`algorithms.agents.model_based_sac`: MBPO, Dyna) all use it:

- every real transition goes to the replay buffer and to the probe;
- ``initial_random_steps`` of uniform random actions come first (the plugin asks
  :attr:`LearnedModel.random_phase`); the first fit is at the step that ends them;
- then a refit every ``model.train_every`` env steps counted from there (MBPO's
  ``model_train_freq``; optional for the planners) and, with ``fit_at_episode_end``, after
  every training episode (PETS);
- before each refit the probe scores the current model on the data it has not been trained on
  (``model_err_h{k}``, :mod:`algorithms.models.diagnostics`);
- every refit's statistics (``model_err_h{k}``, ``model_holdout_mse``, ``model_train_loss``,
  ``model_epochs``) are returned once: by :meth:`LearnedModel.update` at the step of the refit
  (``report="update"``, MBPO) or by :meth:`LearnedModel.on_episode_end` at the end of the episode
  the refit happened in (``report="episode_end"``, the planners; the mean when that episode had
  several refits): one value per (env step, metric) in the trial's curve.

The plugin owns how it uses :attr:`LearnedModel.model`; this class only feeds and fits it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from algorithms.api import (
    AlgoConfig,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    RunContext,
    Transition,
)
from algorithms.models.diagnostics import ModelErrorProbe
from algorithms.models.ensemble import FitResult, ProbabilisticEnsemble
from algorithms.models.ensemble_config import EnsembleConfig, default_weight_decays
from algorithms.models.termination import LearnedTermination, TerminationConfig
from algorithms.replay.buffer import ReplayBuffer
from envs.spec import Capability, TaskSpec, TerminationFn


@dataclass(frozen=True)
class LearnedModelConfig(EnsembleConfig):
    """A learned model's settings, written once and nested as ``model`` in every learned-model
    plugin (``SET pets.model.layers=3``, ``SET mbpo.model.hidden=400``): the ensemble's size and
    training (:class:`~algorithms.models.ensemble.EnsembleConfig`: MBPO's ``construct_model``/
    ``BNN.train``, 7 members, 5 elites, holdout early stopping; PETS's half-cheetah network),
    the held-out error probe and the refit schedule. Plugins with other defaults subclass it and
    redeclare those fields with their sources (PETS: ``PETSModelConfig``; MBPO:
    ``MBPOModelConfig``)."""

    error_horizons: tuple[PositiveInt, ...] = (1, 5, 10, 25)
    """Horizons ``k`` of the held-out model-error diagnostic ``model_err_h{k}`` logged at each
    refit (:mod:`algorithms.models.diagnostics`; in neither paper)."""
    train_every: NonNegativeInt = 0
    """Refit every this many env steps, counted from the first fit (0: never on a step count;
    the planners then refit only after each training episode, as PETS)."""
    fit_batches_per_step: NonNegativeFloat = 0.0
    """Cap on a refit's minibatch steps: this many per env step since the previous fit (0: no
    cap, MBPO's holdout early stopping alone decides, ``BNN.train``). MVE trains its dynamics
    at a fixed rate, 4 batches per env step (vlad17/mve ``experiments/hc5.yaml``), STEVE
    continuously next to the learner; with ``train_every`` 250 and 4 here a refit takes at most
    1000 steps, which keeps a refit's cost flat as the data grow (uncapped Hopper refits ran
    ~300 epochs: docs/algorithms/value_expansion.md). The first fit, at the end of the random
    phase, is never capped (STEVE pretrains its model for 10k updates)."""

    learn_reward: bool | None = None  # type: ignore[assignment]  (resolved per task)
    """Also predict the reward, as an extra output (MBPO predicts ``[reward, delta_obs]``).
    ``None``: exactly when the task has no ``reward_fn`` (PETS plans with the known reward; a
    ``gym:`` task has none), resolved per task (:meth:`for_task`)."""
    termination: TerminationConfig = field(default_factory=TerminationConfig)
    """The learned termination predictor (:mod:`algorithms.models.termination`), used exactly
    when the task has no ``termination_fn`` unless ``termination.learn`` says otherwise."""

    def for_task(self, task: TaskSpec) -> LearnedModelConfig:
        """These settings with the per-task defaults filled in, so that ``meta.json`` records
        them: the weight decays of :func:`~algorithms.models.ensemble.default_weight_decays` for
        ``layers``, and whether the reward and the termination are learned (``None``: when the
        task has no function for them)."""
        fill: dict[str, Any] = {}
        if self.weight_decays is None:
            fill["weight_decays"] = default_weight_decays(self.layers)
        if self.learn_reward is None:
            fill["learn_reward"] = not task.has(Capability.REWARD_FN)
        if self.termination.learn is None:
            learn = not task.has(Capability.TERMINATION_FN)
            fill["termination"] = dataclasses.replace(self.termination, learn=learn)
        return dataclasses.replace(self, **fill) if fill else self

    def needs(self) -> frozenset[Capability]:
        """The task functions this model takes from the task rather than learning them."""
        caps = set()
        if self.learn_reward is False:
            caps.add(Capability.REWARD_FN)
        if self.termination.learn is False:
            caps.add(Capability.TERMINATION_FN)
        return frozenset(caps)


@dataclass(frozen=True)
class PlannerConfig(AlgoConfig):
    """The settings every planner on a :class:`LearnedModel` has (the MPC plugins, ``ilqg``):
    the learned model (``model``), PETS's data loop (kchua/handful-of-trials ``MPC.py``: one
    random rollout first, refit after every episode), or the true model (``oracle``)."""

    renamed: ClassVar[Mapping[str, str]] = {
        "model": "oracle",
        "hidden_size": "model.hidden",
        "num_layers": "model.layers",
        "ensemble_size": "model.members",
        "num_elites": "model.elites",
        "model_lr": "model.lr",
        "model_batch_size": "model.batch_size",
        "model_weight_decays": "model.weight_decays",
        "model_max_epochs": "model.max_epochs",
        "holdout_ratio": "model.holdout_ratio",
        "model_bf16": "model.bf16",
        "learn_reward": "model.learn_reward",
        "model_error_horizons": "model.error_horizons",
        "train_every": "model.train_every",
    }

    oracle: bool = False
    """Plan with the true model instead of a learned one: the task's torch ``dynamics``, or for
    MuJoCo tasks the simulator itself (the oracle ablation; ``model`` is then unused)."""
    model: LearnedModelConfig = field(default_factory=LearnedModelConfig)
    """The learned model: MBPO's ensemble training (7 members, 5 elites, 4 x 200, holdout early
    stopping) with the task's reward function (PETS plans with the known reward)."""
    initial_random_steps: NonNegativeInt | None = None
    """Uniform random env steps before the first fit. ``None``: one episode of the task (PETS
    starts from one random rollout, ``ninit_rollouts=1``), resolved per task (:meth:`for_task`)."""
    buffer_size: PositiveInt = 1_000_000
    """Replay capacity (PETS keeps all data)."""

    def for_task(self, task: TaskSpec) -> PlannerConfig:
        """This config with the fields left ``None`` decided for ``task`` (the values the data
        loop would otherwise pick itself), so that ``meta.json`` records them."""
        fill: dict[str, Any] = {"model": self.model.for_task(task)}
        if self.initial_random_steps is None:
            fill["initial_random_steps"] = task.max_episode_steps
        return dataclasses.replace(self, **fill)

    def learned_model(self, task: TaskSpec, ctx: RunContext, device: Any = None) -> LearnedModel:
        """The learned model of a trial: this ensemble, replay, probe and fit schedule (a refit
        after every training episode, as PETS, and every ``model.train_every`` steps)."""
        return LearnedModel.from_config(task, self, ctx, device=device)


class LearnedModel:
    """Ensemble, replay buffer, model-error probe and refit schedule of one trial.

    Args:
        task: the task (ensemble and probe are built for its observation layout).
        config: the model's settings: the ensemble, the error probe's ``error_horizons`` and the
            refit interval ``train_every`` (env steps after the first fit; 0: never).
        ctx: the trial's context (generators, device, step budget for the buffer's size).
        buffer_size: replay capacity (capped at the trial's step budget).
        initial_random_steps: random env steps before the first fit (``None``: one episode).
        fit_at_episode_end: refit after every training episode (PETS), unless still random or
            just refitted.
        report: where a refit's statistics are returned: ``"update"`` (at its step) or
            ``"episode_end"`` (at the end of its episode).
        device: where the ensemble lives (``None``: the trial's device).
        sim_state_dim: ``S`` > 0: the replay also keeps every transition's simulator states
            (oracle rollouts of the model-based SAC agents on MuJoCo tasks).
    """

    @classmethod
    def from_config(
        cls, task: TaskSpec, config: Any, ctx: RunContext, **kwargs: Any
    ) -> LearnedModel:
        """From a plugin config with a nested ``model`` (:class:`LearnedModelConfig`),
        ``buffer_size`` and ``initial_random_steps``; ``kwargs`` set the schedule."""
        return cls(
            task,
            config.model,
            ctx,
            buffer_size=config.buffer_size,
            initial_random_steps=config.initial_random_steps,
            **kwargs,
        )

    def __init__(
        self,
        task: TaskSpec,
        config: LearnedModelConfig,
        ctx: RunContext,
        *,
        buffer_size: int,
        initial_random_steps: int | None = None,
        fit_at_episode_end: bool = True,
        report: Literal["update", "episode_end"] = "episode_end",
        device: Any = None,
        sim_state_dim: int = 0,
    ) -> None:
        self.ctx = ctx
        self.task = task
        config = config.for_task(task)  # a no-op on a resolved config
        self.learn_reward = bool(config.learn_reward)
        self.termination: LearnedTermination | None = None
        """The learned termination predictor (``None``: the task's ``termination_fn``)."""
        if config.termination.learn:
            self.termination = LearnedTermination(
                task.obs_dim, task.act_dim, config.termination,
                ctx.device if device is None else device,
            )  # fmt: skip
        self.model = ProbabilisticEnsemble.for_task(
            task, config, ctx.device if device is None else device
        )
        self.buffer = ReplayBuffer.for_trial(
            buffer_size, task.obs_dim, task.act_dim, ctx, sim_state_dim
        )
        self.probe = ModelErrorProbe.for_task(task, config.error_horizons)
        self.initial_random_steps = (
            task.max_episode_steps if initial_random_steps is None else initial_random_steps
        )
        assert config.train_every is not None, "resolve the config for a task first"
        self.fit_every = config.train_every
        self.fit_rate = config.fit_batches_per_step
        self.fit_at_episode_end = fit_at_episode_end
        self.report = report
        self.env_steps = 0
        self.last_fit_step = -1
        self.last_fit: FitResult | None = None
        self.pending_fits: list[dict[str, float]] = []
        """Statistics of the refits not yet reported (``report="episode_end"``)."""

    @property
    def termination_fn(self) -> TerminationFn | None:
        """What ends imagined rollouts: the learned predictor, else the task's function."""
        return self.task.termination_fn if self.termination is None else self.termination

    def continuation(self, obs: Any, act: Any, next_obs: Any) -> Any:
        """``[...]`` float: the probability that a step does not end the episode, ``0``/``1``
        from the task's ``termination_fn``, or ``1 - p(terminated)`` from the learned predictor
        (STEVE's continuation probabilities)."""
        if self.termination is not None:
            return 1.0 - self.termination.probability(obs, act, next_obs)
        assert self.task.termination_fn is not None
        return 1.0 - self.task.termination_fn(obs, act, next_obs).float()

    @property
    def random_phase(self) -> bool:
        """Whether training actions should still be uniform random (before the first fit)."""
        return self.env_steps < self.initial_random_steps

    def observe(self, transition: Transition) -> None:
        self.env_steps += 1
        self.buffer.add(transition)
        self.probe.add(transition)

    @property
    def fitted_now(self) -> bool:
        """Whether the model was refitted at the current env step."""
        return self.last_fit_step == self.env_steps

    def fit(self) -> dict[str, float]:
        """Score the model on the data since the last fit, then refit on all data. Returns the
        refit's statistics (also queued for :meth:`on_episode_end` with
        ``report="episode_end"``)."""
        errors = self.probe.measure(self.model)  # data since the last fit: held out from it
        data = self.buffer.all()
        max_batches = None
        if self.fit_rate and self.last_fit is not None:
            max_batches = max(1, round(self.fit_rate * (self.env_steps - self.last_fit_step)))
        self.last_fit = self.model.fit(
            data.obs,
            data.act,
            data.next_obs,
            data.reward if self.learn_reward else None,
            rng=self.ctx.np_rng,
            max_batches=max_batches,
        )
        self.last_fit_step = self.env_steps
        stats = {**errors, **self.last_fit.metrics()}
        if self.termination is not None:  # as many steps as the ensemble's refit
            stats |= self.termination.fit(
                data.obs, data.act, data.next_obs, data.terminated,
                batches=self.last_fit.batches, rng=self.ctx.np_rng,
            )  # fmt: skip
        if self.report == "episode_end":
            self.pending_fits.append(stats)
        return stats

    def update(self) -> dict[str, float]:
        """After an env step: fit at the end of the random phase and every ``fit_every`` steps
        after it. Returns the refit's statistics with ``report="update"``, else nothing (they
        wait for :meth:`on_episode_end`)."""
        since = self.env_steps - self.initial_random_steps
        if since < 0 or self.fitted_now:
            return {}
        if since == 0 or (self.fit_every and since % self.fit_every == 0):
            stats = self.fit()
            return stats if self.report == "update" else {}
        return {}

    def on_episode_end(self) -> dict[str, float]:
        """After a training episode: refit (with ``fit_at_episode_end``), unless still random or
        just fitted; returns the statistics of this episode's refits (their mean per metric when
        there were several) with ``report="episode_end"``."""
        if self.fit_at_episode_end and not (
            self.env_steps < self.initial_random_steps or self.fitted_now or self.env_steps == 0
        ):
            self.fit()
        fits, self.pending_fits = self.pending_fits, []
        keys = dict.fromkeys(k for f in fits for k in f)
        return {k: sum(f[k] for f in fits if k in f) / sum(k in f for f in fits) for k in keys}

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "last_fit_step": self.last_fit_step,
            "last_fit": None if self.last_fit is None else dataclasses.asdict(self.last_fit),
            "pending_fits": [dict(f) for f in self.pending_fits],
            "model": self.model.state_dict(),
            "optim": self.model.optim.state_dict(),
            "buffer": self.buffer.state_dict(),
            "probe": self.probe.state_dict(),
            **({} if self.termination is None else {"termination": self.termination.state_dict()}),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.env_steps = int(state["env_steps"])
        self.last_fit_step = int(state["last_fit_step"])
        lf = state["last_fit"]
        self.last_fit = None if lf is None else FitResult(**lf)
        self.pending_fits = [dict(f) for f in state["pending_fits"]]
        self.model.load_state_dict(state["model"])
        self.model.optim.load_state_dict(state["optim"])
        self.buffer.load_state_dict(state["buffer"])
        self.probe.load_state_dict(state["probe"])
        if self.termination is not None:
            self.termination.load_state_dict(state["termination"])


class LearnedModelHooks:
    """The :class:`~algorithms.api.Algorithm` hooks of a planner whose learned model, if any, is a
    :class:`LearnedModel` in ``self.data`` (``None`` on the true model: the hooks do nothing).
    Put it before ``Algorithm`` in the bases."""

    data: LearnedModel | None
    ctx: RunContext

    def _loop_state(self) -> dict[str, Any]:
        """Checkpoint part: the learned model (``None`` on a true model)."""
        return {"data": None if self.data is None else self.data.state_dict()}

    def _load_loop_state(self, state: Mapping[str, Any]) -> None:
        if self.data is not None:
            self.data.load_state_dict(state["data"])

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """The per-task values of the learned model's fields (:meth:`PlannerConfig.for_task`;
        unused on a true model, but recorded all the same)."""
        assert isinstance(config, PlannerConfig)
        return config.for_task(task)

    def _in_random_phase(self) -> bool:
        return self.data is not None and self.data.random_phase

    def observe(self, transition: Transition) -> None:
        if self.data is not None:
            self.data.observe(transition)

    def update(self) -> Mapping[str, float]:
        return {} if self.data is None else self.data.update()

    def on_episode_end(self) -> Mapping[str, float]:
        return {} if self.data is None else self.data.on_episode_end()
