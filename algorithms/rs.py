"""``rs``: random-shooting MPC (Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based
Deep Reinforcement Learning with Model-Free Fine-Tuning").

At every step: sample ``population`` action sequences of length ``horizon`` uniformly within the
action bounds, score them all under the model (one batched rollout: ``population x particles``
rows, one model call per horizon step) with the task's ``reward_fn`` / ``termination_fn``, and
execute the first action of the sequence with the highest mean predicted return.

The model is either the probabilistic ensemble (:mod:`algorithms.models.ensemble`) trained on
the real transitions (``model="learned"``: ``initial_random_steps`` of uniform random actions,
then a refit after every training episode and, optionally, every ``train_every`` steps; the
data aggregation loop of Nagabandi et al.), or the task's true torch ``dynamics``
(``model="true"``, an oracle ablation that needs :attr:`Capability.DYNAMICS`).

Differences from the paper, on purpose: the model is the PETS/MBPO probabilistic ensemble (the
paper uses one deterministic MLP, 2x500 ReLU, MSE loss); with ``propagation="mean"`` and
``sample=False`` (the defaults) the planner sees the elites' mean prediction, the deterministic
analogue. Nagabandi et al. also refit on a fixed number of epochs; here the ensemble early-stops
on a holdout set (``model_max_epochs`` caps it).

Planning cost per env step: ``horizon`` model calls on ``population * particles`` rows
(``x num_elites`` for ``propagation="mean"``). Measured on one CPU thread (the driver's default)
with the 7x(4x200) ensemble: the paper-sized default (1000 x 20, mean over 5 elites) ~330 ms;
200 x 15 mean ~45 ms; 200 x 15 ``tsinf`` ~11 ms; the true pendulum dynamics at 1000 x 20 ~2 ms.
Quick runs should override e.g. ``population=200, horizon=15, propagation="tsinf",
model_max_epochs=40``: this learns Pendulum in 1500 steps (``tests/test_rs.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from algorithms.api import AlgoConfig, Algorithm, Capability, RunContext, Transition
from algorithms.buffer import ReplayBuffer
from algorithms.models.ensemble import (
    EnsembleConfig,
    EnsembleStep,
    FitResult,
    ProbabilisticEnsemble,
)
from algorithms.planners.rollout import StepFn, rollout
from envs.spec import TaskSpec


@dataclass(frozen=True)
class RSConfig(AlgoConfig):
    """Random-shooting MPC. Planner defaults: Nagabandi et al. 2018 official code
    (anagabandi/nn_dynamics ``yaml_files/cheetah_forward.yaml``); model defaults: MBPO/PETS."""

    model: Literal["learned", "true"] = "learned"
    """``"learned"``: the ensemble fitted on the real data; ``"true"``: the task's torch
    ``dynamics`` (oracle ablation, needs Capability.DYNAMICS)."""
    horizon: int = 20
    """Planning horizon H. nn_dynamics ``cheetah_forward.yaml`` ``controller.horizon: 20``
    (hopper 40, ant 5, swimmer 20)."""
    population: int = 1000
    """Candidate sequences K. nn_dynamics ``cheetah_forward.yaml``
    ``controller.num_control_samples: 1000`` (swimmer 5000, ant 15000)."""
    particles: int = 1
    """Model rollouts per candidate (returns averaged). 1: Nagabandi's deterministic model; PETS
    uses 20 with its own propagation."""
    propagation: Literal["ts1", "tsinf", "mean"] = "mean"
    """Ensemble propagation (PETS Sec. 5). ``"mean"``: elites' mean (deterministic, closest to
    Nagabandi's single model)."""
    sample: bool = False
    """Sample the Gaussian next state (PETS) instead of taking its mean (Nagabandi)."""
    gamma: float = 1.0
    """Discount inside the horizon. Nagabandi et al. sum undiscounted rewards (``mpc_controller.py``)."""
    initial_random_steps: int | None = None
    """Uniform random env steps before the first fit (Nagabandi et al. start from random
    rollouts). ``None``: one episode (``task.max_episode_steps``)."""
    train_every: int | None = None
    """Also refit every this many env steps (``None``: only after each training episode, the
    paper's aggregation iteration)."""
    buffer_size: int = 1_000_000
    """Replay capacity (all data is kept at benchmark budgets, as in the paper's aggregation)."""
    ensemble_size: int = 7
    """Ensemble members. MBPO ``num_networks=7``."""
    num_elites: int = 5
    """Elites used for prediction. MBPO ``num_elites=5``."""
    hidden_size: int = 200
    """Hidden units. MBPO ``hidden_dim=200``."""
    num_layers: int = 4
    """Hidden layers. MBPO ``construct_model`` (4)."""
    model_lr: float = 1e-3
    """Adam learning rate. MBPO; also nn_dynamics ``dyn_model.lr: 0.001``."""
    model_batch_size: int = 256
    """Minibatch per member. MBPO ``batch_size=256``."""
    model_weight_decays: tuple[float, ...] | None = None
    """Per-layer L2 (``num_layers + 1`` values). ``None``: MBPO's
    ``(2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)``."""
    model_max_epochs: int | None = None
    """Cap on epochs per fit (``None``: MBPO's early stopping alone)."""
    model_bf16: bool = False
    """Run the ensemble's forward passes under bf16 autocast (``EnsembleConfig.bf16``; weights,
    optimizer, loss and outputs stay float32). Off: PETS/MBPO train in fp32."""
    holdout_ratio: float = 0.2
    """Holdout fraction for early stopping and elites. MBPO ``holdout_ratio=0.2``."""
    learn_reward: bool = False
    """Plan with a learned reward head instead of the task's ``reward_fn`` (Nagabandi et al.
    use the known reward function)."""

    def ensemble_config(self) -> EnsembleConfig:
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
            bf16=self.model_bf16,
            learn_reward=self.learn_reward,
        )


class RandomShooting(Algorithm):
    """Random-shooting MPC over a learned ensemble or the true dynamics. See the module doc."""

    name = "rs"
    Config = RSConfig
    requires = frozenset(
        {Capability.REWARD_FN, Capability.TERMINATION_FN, Capability.CONTINUOUS_ACTIONS}
    )

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        assert isinstance(config, RSConfig)
        if config.model == "true":
            return cls.requires | {Capability.DYNAMICS}
        return cls.requires

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        assert isinstance(config, RSConfig)
        self.cfg = config
        dev = ctx.device
        self.low = torch.as_tensor(task.act_low, dtype=torch.float32, device=dev)
        self.high = torch.as_tensor(task.act_high, dtype=torch.float32, device=dev)
        self.initial_random_steps = (
            task.max_episode_steps
            if config.initial_random_steps is None
            else config.initial_random_steps
        )
        self.env_steps = 0
        self.last_fit_step = -1
        self.last_fit: FitResult | None = None
        self.model: ProbabilisticEnsemble | None = None
        self.buffer: ReplayBuffer | None = None
        if config.model == "learned":
            self.model = ProbabilisticEnsemble(
                task.obs_dim, task.act_dim, config.ensemble_config(), device=dev
            )
            self.buffer = ReplayBuffer.for_trial(
                config.buffer_size, task.obs_dim, task.act_dim, ctx
            )

    # ------------------------------------------------------------------ planning
    @property
    def ready(self) -> bool:
        """Whether there is a model to plan with."""
        return self.model is None or self.model.fitted

    def _step_fn(self) -> StepFn:
        if self.model is None:
            dynamics = self.task.dynamics
            assert dynamics is not None
            return dynamics
        return EnsembleStep(
            self.model, self.cfg.propagation, sample=self.cfg.sample, generator=self.ctx.torch_gen
        )

    def sample_sequences(self) -> torch.Tensor:
        """``[K, H, A]`` uniform action sequences within the bounds (from ``ctx.torch_gen``)."""
        c = self.cfg
        u = torch.rand(c.population, c.horizon, self.task.act_dim, generator=self.ctx.torch_gen)
        return self.low + u.to(self.low.device) * (self.high - self.low)

    @torch.no_grad()
    def plan(self, obs: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """``(first action [A], sequences [K, H, A], mean returns [K])`` from state ``obs``."""
        seqs = self.sample_sequences()
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.low.device)
        res = rollout(
            self._step_fn(),
            o.reshape(1, -1).expand(self.cfg.population, -1),
            seqs,
            reward_fn=self.task.reward_fn,
            termination_fn=self.task.termination_fn,
            gamma=self.cfg.gamma,
            particles=self.cfg.particles,
        )
        returns = torch.nan_to_num(res.returns, nan=-torch.inf)
        best = int(torch.argmax(returns))
        return seqs[best, 0].cpu().numpy().astype(np.float32), seqs, res.returns

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        if not self.ready or (explore and self._in_random_phase()):
            return self.random_action()
        return self.plan(obs)[0]

    def _in_random_phase(self) -> bool:
        return self.model is not None and self.env_steps < self.initial_random_steps

    # ------------------------------------------------------------------ learning
    def observe(self, transition: Transition) -> None:
        self.env_steps += 1
        if self.buffer is not None:
            self.buffer.add(transition)

    def _fit(self) -> dict[str, float]:
        assert self.model is not None and self.buffer is not None
        data = self.buffer.all()
        self.last_fit = self.model.fit(
            data.obs,
            data.act,
            data.next_obs,
            data.reward if self.cfg.learn_reward else None,
            rng=self.ctx.np_rng,
        )
        self.last_fit_step = self.env_steps
        return self.last_fit.metrics()

    def update(self) -> Mapping[str, float]:
        if self.model is None or self.env_steps == self.last_fit_step:
            return {}
        n0, every = self.initial_random_steps, self.cfg.train_every
        if self.env_steps == n0 or (every and self.env_steps > n0 and self.env_steps % every == 0):
            return self._fit()
        return {}

    def on_episode_end(self) -> Mapping[str, float]:
        if (
            self.model is None
            or self.env_steps < self.initial_random_steps
            or self.env_steps == self.last_fit_step
            or self.env_steps == 0
        ):
            return {}
        return self._fit()

    def eval_metrics(self) -> Mapping[str, float]:
        if self.last_fit is None:
            return {}
        return {"model_holdout_mse": self.last_fit.holdout_mse}

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "env_steps": self.env_steps,
            "last_fit_step": self.last_fit_step,
            "last_fit": None if self.last_fit is None else dataclasses.asdict(self.last_fit),
            "np_rng": self.ctx.np_rng.bit_generator.state,
            "torch_gen": self.ctx.torch_gen.get_state(),
        }
        if self.model is not None and self.buffer is not None:
            state["model"] = self.model.state_dict()
            state["optim"] = self.model.optim.state_dict()
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.env_steps = int(state["env_steps"])
        self.last_fit_step = int(state["last_fit_step"])
        lf = state["last_fit"]
        self.last_fit = None if lf is None else FitResult(**lf)
        if self.model is not None and self.buffer is not None:
            self.model.load_state_dict(state["model"])
            self.model.optim.load_state_dict(state["optim"])
            self.buffer.load_state_dict(state["buffer"])
        self.ctx.np_rng.bit_generator.state = state["np_rng"]
        self.ctx.torch_gen.set_state(state["torch_gen"])
