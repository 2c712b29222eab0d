"""Model-predictive control with a sampling-based trajectory optimizer: the shared machinery of
``rs``, ``cem``, ``mppi``, ``icem`` and ``pets``.

At every env step the agent asks its planning model (:mod:`algorithms.planners.models`, chosen
once in the constructor by :meth:`MPCAgent.make_planning_model`) for an objective over action
sequences ``[N, H, A] -> [N]``, hands it to its optimizer (:mod:`algorithms.planners.optimizers`)
and executes the first action of the plan (MPC). Three planning models, all scored by the task's
own ``reward_fn`` / ``termination_fn``:

- by default: :class:`~algorithms.planners.models.EnsembleModel`, the probabilistic ensemble
  (:mod:`algorithms.models.ensemble`, settings in the nested ``model`` config) fitted on the real
  transitions; ``particles`` rollouts per sequence with PETS propagation (``ts1``, ``tsinf``,
  ``mean``), one ensemble call on ``N * particles`` rows per horizon step. The data loop
  (:class:`~algorithms.models.learned.LearnedModel`): ``initial_random_steps`` of uniform
  random actions, then a refit after every training episode (and optionally every
  ``model.train_every`` steps).
- ``oracle=True`` on a task with torch ``dynamics``:
  :class:`~algorithms.planners.models.DynamicsModel`, the same rollout with the true dynamics.
- ``oracle=True`` on a MuJoCo task: :class:`~algorithms.planners.models.SimulatorModel`, batched
  rollouts in the simulator itself from the current ``info["sim_state"]``.

The two oracle variants run the *same* optimizer code as the learned model: comparing them
separates planner error from model error (the MBPO post's question).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    PositiveFraction,
    PositiveInt,
    RunContext,
)
from algorithms.models.ensemble import ProbabilisticEnsemble
from algorithms.models.learned import LearnedModel, LearnedModelHooks, PlannerConfig
from algorithms.planners.models import (
    DynamicsModel,
    EnsembleModel,
    PlanningModel,
    SimulatorModel,
    check_true_model,
)
from algorithms.planners.optimizers import Objective, TrajectoryOptimizer
from envs.spec import TaskSpec


@dataclass(frozen=True)
class MPCConfig(PlannerConfig):
    """Model and data-loop settings shared by the MPC plugins: PETS's propagation (kchua/
    handful-of-trials ``MPC.py``: 20 particles, TS-inf, sampled next states, one random rollout
    first, refit after every episode) over MBPO's ensemble training (jannerm/mbpo
    ``construct_model``/``BNN.train``: 7 members, 5 elites, holdout early stopping; the nested
    ``model``, :class:`~algorithms.models.learned.LearnedModelConfig`). ``pets`` switches the
    training to PETS's own recipe; each plugin names its planner's source."""

    horizon: PositiveInt = 25
    """Planning horizon H. PETS (kchua/handful-of-trials ``cartpole.py`` ``PLAN_HOR = 25``)."""
    particles: PositiveInt = 20
    """Model rollouts per candidate sequence, returns averaged (PETS ``npart=20``). Forced to 1
    for deterministic models (``oracle=True``)."""
    propagation: Literal["ts1", "tsinf", "mean"] = "tsinf"
    """Ensemble propagation (PETS Sec. 5); PETS's default is TS-inf."""
    sample: bool = True
    """Sample the Gaussian next state (PETS) instead of taking its mean."""
    gamma: PositiveFraction = 1.0
    """Discount inside the horizon. PETS sums undiscounted rewards."""


class MPCAgent(LearnedModelHooks, Algorithm):
    """MPC over a planning model (:mod:`algorithms.planners.models`). Subclasses choose the
    optimizer (:meth:`make_optimizer`) and may bring another model (:meth:`make_planning_model`)."""

    Config = MPCConfig
    requires = frozenset({Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        """The true model plans with the task's reward and termination functions; a learned one
        learns whichever the task lacks (``model.learn_reward``, ``model.termination``)."""
        assert isinstance(config, MPCConfig)
        if config.oracle:
            return cls.requires | {Capability.REWARD_FN, Capability.TERMINATION_FN}
        return cls.requires | config.model.needs()

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        super().check_task(task, config)
        assert isinstance(config, MPCConfig)
        if config.oracle:
            check_true_model(cls.name, task)

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        assert isinstance(config, MPCConfig)
        self.cfg = config
        dev = ctx.device
        self.low = torch.as_tensor(task.act_low, dtype=torch.float32, device=dev)
        self.high = torch.as_tensor(task.act_high, dtype=torch.float32, device=dev)
        self.data: LearnedModel | None = None if config.oracle else config.learned_model(task, ctx)
        """The learned model: ensemble, replay, probe, refit schedule (``None`` with ``oracle``)."""
        self.planning_model: PlanningModel = self.make_planning_model()
        """Where the objectives come from (chosen once, by :meth:`make_planning_model`)."""
        # one warm-start slot per kind of episode: evaluation may interleave with a training
        # episode (the driver evaluates mid-episode) without disturbing its plan
        self.optimizers = {True: self.make_optimizer(), False: self.make_optimizer()}
        self._plan_sums: dict[str, float] = {}
        self._plan_count = 0

    @abstractmethod
    def make_optimizer(self) -> TrajectoryOptimizer:
        """The plugin's trajectory optimizer over ``[N, H, A]`` sequences in the action box."""

    def build_optimizer(self, cls: type[TrajectoryOptimizer], *fields: str) -> TrajectoryOptimizer:
        """``cls(horizon, low, high, generator=ctx.torch_gen, **{f: config.f for f in fields})``."""
        return cls(
            self.cfg.horizon,
            self.low,
            self.high,
            generator=self.ctx.torch_gen,
            **{f: getattr(self.cfg, f) for f in fields},
        )

    # ------------------------------------------------------------------ planning
    def make_planning_model(self) -> PlanningModel:
        """The model behind the objective: the data loop's ensemble (by default), the task's
        torch dynamics, or its MuJoCo simulator (``oracle=True``). A subclass with another
        kind of model (e.g. a latent world model) overrides this."""
        task, cfg, dev = self.task, self.cfg, self.ctx.device
        if self.data is not None:
            return EnsembleModel(
                self.data.model,
                task,
                propagation=cfg.propagation,
                sample=cfg.sample,
                particles=cfg.particles,
                gamma=cfg.gamma,
                generator=self.ctx.torch_gen,
                device=dev,
                termination_fn=self.data.termination_fn,
            )
        if task.dynamics is not None:
            return DynamicsModel(task, gamma=cfg.gamma, device=dev)
        return SimulatorModel(task, gamma=cfg.gamma, device=dev)

    @property
    def ensemble(self) -> ProbabilisticEnsemble | None:
        """The learned ensemble (``None`` on the true model)."""
        return None if self.data is None else self.data.model

    @property
    def ready(self) -> bool:
        """Whether there is a model to plan with."""
        return self.planning_model.ready

    def objective(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> Objective:
        """``actions [N, H, A] -> predicted returns [N]`` from the current state."""
        return self.planning_model.objective(obs, info)

    @property
    def optimizer(self) -> TrajectoryOptimizer:
        """The training episodes' optimizer (evaluation episodes have their own warm start)."""
        return self.optimizers[True]

    @torch.no_grad()
    def plan(
        self,
        obs: np.ndarray,
        info: Mapping[str, Any] | None = None,
        *,
        explore: bool = True,
        proposals: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[H, A]``: the optimizer's plan from state ``obs`` (warm-started); ``proposals
        [K, H, A]`` (e.g. a policy prior's trajectories) join every iteration's candidates."""
        optimizer = self.optimizers[explore]
        plan = optimizer.optimize(self.objective(obs, info), proposals)
        for k, v in optimizer.last_info.items():
            self._plan_sums[k] = self._plan_sums.get(k, 0.0) + v
        self._plan_count += 1
        return plan

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        if not self.ready or (explore and self._in_random_phase()):
            return self.random_action()
        return self.plan(obs, info, explore=explore)[0].cpu().numpy().astype(np.float32)

    def reset(self, *, explore: bool) -> None:
        self.optimizers[explore].reset()

    def eval_metrics(self) -> Mapping[str, float]:
        """The planner's statistics since the previous evaluation (the model's refits are logged
        by ``on_episode_end``, :class:`~algorithms.models.learned.LearnedModel`)."""
        out: dict[str, float] = {}
        if self._plan_count:
            out.update({k: v / self._plan_count for k, v in self._plan_sums.items()})
            self._plan_sums, self._plan_count = {}, 0
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            **self._loop_state(),
            "plan_sums": dict(self._plan_sums),
            "plan_count": self._plan_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._plan_sums, self._plan_count = dict(state["plan_sums"]), int(state["plan_count"])
        self._load_loop_state(state)
