"""The data side of a planner on a learned model (PETS's loop), shared by the MPC plugins
(:mod:`algorithms.mpc`) and iLQG (:mod:`algorithms.ilqg`):

- every real transition goes to a replay buffer and to the held-out model-error probe;
- ``initial_random_steps`` of uniform random actions come first (the plugin asks
  :attr:`ModelDataLoop.random_phase`); the first fit is at the step that ends them;
- then a refit after every training episode and, optionally, every ``train_every`` env steps;
- before each refit the probe scores the current model on the data it has not been trained on
  (``model_err_h{k}``, :mod:`algorithms.models.diagnostics`).

The planner owns how it uses :attr:`ModelDataLoop.model`; this class only feeds and fits it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from algorithms.api import AlgoConfig, RunContext, Transition
from algorithms.buffer import ReplayBuffer
from algorithms.models.diagnostics import ModelErrorProbe
from algorithms.models.ensemble import EnsembleConfig, FitResult, ProbabilisticEnsemble
from envs.spec import TaskSpec


@dataclass(frozen=True)
class LearnedModelConfig(AlgoConfig):
    """The learned model's settings of a planner on a :class:`ModelDataLoop` (the MPC plugins,
    ``ilqg``): MBPO's ensemble training (jannerm/mbpo ``construct_model``/``BNN.train``: 7
    members, 5 elites, holdout early stopping) in PETS's data loop (kchua/handful-of-trials
    ``MPC.py``: one random rollout first, refit after every episode)."""

    initial_random_steps: int | None = None
    """Uniform random env steps before the first fit. ``None``: one episode (PETS starts from one
    random rollout, ``ninit_rollouts=1``)."""
    train_every: int | None = None
    """Also refit every this many env steps (``None``: after each training episode, as PETS)."""
    buffer_size: int = 1_000_000
    """Replay capacity (PETS keeps all data)."""
    ensemble_size: int = 7
    """Ensemble members. MBPO ``num_networks=7`` (jannerm/mbpo ``construct_model``)."""
    num_elites: int = 5
    """Members used for prediction, the best on the holdout. MBPO ``num_elites=5``."""
    hidden_size: int = 200
    """Hidden units. MBPO ``hidden_dim=200``; PETS half-cheetah ``nn_constructor`` (200)."""
    num_layers: int = 4
    """Hidden layers. MBPO / PETS half-cheetah (4 FC-200)."""
    model_lr: float = 1e-3
    """Adam learning rate. MBPO and PETS (``learning_rate=0.001``)."""
    model_batch_size: int = 256
    """Minibatch per member. MBPO ``batch_size=256``."""
    model_weight_decays: tuple[float, ...] | None = None
    """Per-layer L2 (``num_layers + 1`` values). ``None``: MBPO's / PETS half-cheetah's
    ``(2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)`` for 4 layers (a linear ramp otherwise)."""
    model_max_epochs: int | None = None
    """Cap on epochs per fit (``None``: MBPO's holdout early stopping alone)."""
    holdout_ratio: float = 0.2
    """Holdout fraction for early stopping and elites. MBPO ``holdout_ratio=0.2``."""
    model_error_horizons: tuple[int, ...] = (1, 5, 10, 25)
    """Horizons ``k`` of the held-out model-error diagnostic ``model_err_h{k}`` logged before each
    refit (:mod:`algorithms.models.diagnostics`; not part of PETS)."""

    def ensemble_config(self) -> EnsembleConfig:
        """The ensemble these fields describe (fp32, the task's reward function)."""
        return EnsembleConfig(
            members=self.ensemble_size,
            elites=self.num_elites,
            hidden=self.hidden_size,
            layers=self.num_layers,
            weight_decays=self.model_weight_decays,
            lr=self.model_lr,
            batch_size=self.model_batch_size,
            holdout_ratio=self.holdout_ratio,
            max_epochs=self.model_max_epochs,
        )

    def data_loop(self, task: TaskSpec, ctx: RunContext, device: Any = None) -> ModelDataLoop:
        """The data loop of a trial: this ensemble, replay, probe and fit schedule."""
        return ModelDataLoop(
            task,
            self.ensemble_config(),
            ctx,
            buffer_size=self.buffer_size,
            error_horizons=self.model_error_horizons,
            initial_random_steps=self.initial_random_steps,
            train_every=self.train_every,
            device=device,
        )


class ModelDataLoop:
    """Replay buffer, model-error probe and fit schedule around one :class:`ProbabilisticEnsemble`.

    Args:
        task: the task (ensemble and probe are built for its observation layout).
        config: the ensemble's settings.
        ctx: the trial's context (generators, device, step budget for the buffer's size).
        buffer_size: replay capacity (capped at the trial's step budget).
        error_horizons: horizons of the held-out model-error diagnostic.
        initial_random_steps: random env steps before the first fit (``None``: one episode).
        train_every: also refit every this many env steps (``None``: only at episode ends).
        device: where the ensemble lives (``None``: the trial's device).
    """

    def __init__(
        self,
        task: TaskSpec,
        config: EnsembleConfig,
        ctx: RunContext,
        *,
        buffer_size: int,
        error_horizons: Sequence[int],
        initial_random_steps: int | None = None,
        train_every: int | None = None,
        device: Any = None,
    ) -> None:
        self.ctx = ctx
        self.learn_reward = config.learn_reward
        self.model = ProbabilisticEnsemble.for_task(
            task, config, ctx.device if device is None else device
        )
        self.buffer = ReplayBuffer.for_trial(buffer_size, task.obs_dim, task.act_dim, ctx)
        self.probe = ModelErrorProbe.for_task(task, error_horizons)
        self.initial_random_steps = (
            task.max_episode_steps if initial_random_steps is None else initial_random_steps
        )
        self.train_every = train_every
        self.env_steps = 0
        self.last_fit_step = -1
        self.last_fit: FitResult | None = None

    @property
    def random_phase(self) -> bool:
        """Whether training actions should still be uniform random (before the first fit)."""
        return self.env_steps < self.initial_random_steps

    def observe(self, transition: Transition) -> None:
        self.env_steps += 1
        self.buffer.add(transition)
        self.probe.add(transition)

    def fit(self) -> dict[str, float]:
        """Score the model on the data since the last fit, then refit on all data."""
        errors = self.probe.measure(self.model)  # data since the last fit: held out from it
        data = self.buffer.all()
        self.last_fit = self.model.fit(
            data.obs,
            data.act,
            data.next_obs,
            data.reward if self.learn_reward else None,
            rng=self.ctx.np_rng,
        )
        self.last_fit_step = self.env_steps
        return {**errors, **self.last_fit.metrics()}

    def update(self) -> dict[str, float]:
        """After an env step: fit at the end of the random phase and every ``train_every``."""
        if self.env_steps == self.last_fit_step:
            return {}
        n0, every = self.initial_random_steps, self.train_every
        if self.env_steps == n0 or (every and self.env_steps > n0 and self.env_steps % every == 0):
            return self.fit()
        return {}

    def on_episode_end(self) -> dict[str, float]:
        """After a training episode: refit, unless still random or just fitted."""
        if (
            self.env_steps < self.initial_random_steps
            or self.env_steps == self.last_fit_step
            or self.env_steps == 0
        ):
            return {}
        return self.fit()

    def metrics(self) -> dict[str, float]:
        """``model_holdout_mse`` of the latest fit (nothing before the first)."""
        return {} if self.last_fit is None else {"model_holdout_mse": self.last_fit.holdout_mse}

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "last_fit_step": self.last_fit_step,
            "last_fit": None if self.last_fit is None else dataclasses.asdict(self.last_fit),
            "model": self.model.state_dict(),
            "optim": self.model.optim.state_dict(),
            "buffer": self.buffer.state_dict(),
            "probe": self.probe.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.env_steps = int(state["env_steps"])
        self.last_fit_step = int(state["last_fit_step"])
        lf = state["last_fit"]
        self.last_fit = None if lf is None else FitResult(**lf)
        self.model.load_state_dict(state["model"])
        self.model.optim.load_state_dict(state["optim"])
        self.buffer.load_state_dict(state["buffer"])
        self.probe.load_state_dict(state["probe"])


class DataLoopHooks:
    """The :class:`~algorithms.api.Algorithm` hooks of a planner whose learned model, if any, is a
    :class:`ModelDataLoop` in ``self.data`` (``None`` on the true model: the hooks do nothing).
    Put it before ``Algorithm`` in the bases."""

    data: ModelDataLoop | None
    ctx: RunContext

    def _loop_state(self) -> dict[str, Any]:
        """Checkpoint part: the trial's generators and the data loop (``None`` on a true model)."""
        return {
            "np_rng": self.ctx.np_rng.bit_generator.state,
            "torch_gen": self.ctx.torch_gen.get_state(),
            "data": None if self.data is None else self.data.state_dict(),
        }

    def _load_loop_state(self, state: Mapping[str, Any]) -> None:
        if self.data is not None:
            self.data.load_state_dict(state["data"])
        self.ctx.np_rng.bit_generator.state = state["np_rng"]
        self.ctx.torch_gen.set_state(state["torch_gen"])

    def _in_random_phase(self) -> bool:
        return self.data is not None and self.data.random_phase

    def observe(self, transition: Transition) -> None:
        if self.data is not None:
            self.data.observe(transition)

    def update(self) -> Mapping[str, float]:
        return {} if self.data is None else self.data.update()

    def on_episode_end(self) -> Mapping[str, float]:
        return {} if self.data is None else self.data.on_episode_end()
