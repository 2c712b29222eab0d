"""The model-based SAC agent: a SAC learner next to a learned dynamics model, the base of the
families that learn a policy from model data (MBPO, Dyna) or with model-based targets (MVE,
STEVE).

What the base does, per env step (the loop of MBPO's official code, jannerm/mbpo
``mbpo/algorithms/mbpo.py``):

1. ``initial_random_steps`` uniform random env steps, then the SAC policy;
2. every real transition goes to the :class:`~algorithms.models.learned.LearnedModel` (replay of
   real data, held-out error probe); it refits the ensemble at the end of the random phase and
   every ``model.train_every`` env steps after it, and returns the refit's statistics at that step;
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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    NonNegativeInt,
    PositiveInt,
    RunContext,
    Transition,
    apply_overrides,
)
from algorithms.learners.base import ActorCriticLearner
from algorithms.learners.ddpg import DDPGLearner, DDPGLearnerConfig
from algorithms.learners.sac import CriticTargets, SACLearner, SACLearnerConfig
from algorithms.models.ensemble import EnsembleStep, ProbabilisticEnsemble
from algorithms.models.learned import LearnedModel, LearnedModelConfig
from algorithms.planners.models import SimulatorStep, check_true_model
from algorithms.planners.rollout import StepFn
from algorithms.replay.buffer import Batch, ReplayBuffer
from envs.spec import TaskSpec

if TYPE_CHECKING:
    from envs.simulate import SimulatorRollout


@dataclass(frozen=True)
class MBPOModelConfig(LearnedModelConfig):
    """MBPO's dynamics model (jannerm/mbpo ``mbpo/models/constructor.py`` ``construct_model``,
    ``mbpo/models/bnn.py``): :class:`~algorithms.models.learned.LearnedModelConfig`'s ensemble
    (7 members, 5 elites, 4 swish layers, lr 1e-3, batch 256, holdout 0.2, no epoch cap), learning
    the reward too, its width and refit interval decided per task (``None``: the plugin's
    ``resolve_config``)."""

    hidden: PositiveInt | None = None
    """Hidden units per model layer (code ``hidden_dim``: 200; Humanoid 400), resolved per
    task."""
    learn_reward: bool = True
    """The model predicts the reward (code: ``[reward, delta_obs]`` targets). ``False`` scores
    rollouts with the task's ``reward_fn`` instead."""
    train_every: PositiveInt | None = None
    """Refit the model every this many env steps (code ``model_train_freq``: 250; Humanoid
    1000), resolved per task."""


#: Former flat keys of the model-based SAC configs -> their nested paths (errors name them).
_RENAMED: dict[str, str] = {
    **{k: f"sac.{k}" for k in ("lr", "gamma", "tau", "batch_size", "hidden", "layers")},
    **{k: f"sac.{k}" for k in ("target_entropy", "init_alpha", "autotune_alpha", "bf16")},
    "model_train_freq": "model.train_every",
    "ensemble_size": "model.members",
    "num_elites": "model.elites",
    "model_hidden": "model.hidden",
    "model_layers": "model.layers",
    "model_lr": "model.lr",
    "model_batch_size": "model.batch_size",
    "model_weight_decays": "model.weight_decays",
    "holdout_ratio": "model.holdout_ratio",
    "model_max_epochs": "model.max_epochs",
    "model_bf16": "model.bf16",
    "learn_reward": "model.learn_reward",
    "model_error_horizons": "model.error_horizons",
}


@dataclass(frozen=True)
class ModelBasedSACConfig(AlgoConfig):
    """The fields every model-based SAC agent has: the SAC learner (``sac``), the dynamics model
    (``model``) and the real-data schedule. Defaults are MBPO's: "code" is jannerm/mbpo
    (``examples/config/<task>/0.py``, ``examples/development/base.py``); a family with other
    sources redeclares the field with its own default and docstring. ``None`` fields are decided
    per task by the plugin's ``resolve_config``."""

    renamed: ClassVar[Mapping[str, str]] = _RENAMED

    sac: SACLearnerConfig = field(default_factory=SACLearnerConfig)
    """The SAC learner (:class:`~algorithms.learners.sac.SACLearnerConfig`: Haarnoja et al.
    2018b Table 1, the values of MBPO's code ``base.py``). ``sac.target_entropy`` ``None``: the
    plugin's per-task value, else ``-|A|``."""
    model: MBPOModelConfig = field(default_factory=MBPOModelConfig)
    """The dynamics model (:class:`MBPOModelConfig`: MBPO's ensemble, learning the reward)."""
    learner: Literal["sac", "ddpg"] = "sac"
    """The actor-critic learner: ``sac`` (MBPO's) or ``ddpg`` (the value-expansion papers'
    base), configured by the field of that name."""
    ddpg: DDPGLearnerConfig = field(default_factory=DDPGLearnerConfig)
    """The DDPG learner of ``learner: ddpg``
    (:class:`~algorithms.learners.ddpg.DDPGLearnerConfig`: CleanRL's values; MVE and STEVE
    redeclare it with their papers')."""
    updates_per_step: PositiveInt | None = None
    """SAC gradient steps per env step, G (code ``n_train_repeat``: 20; HalfCheetah 40;
    InvertedPendulum 10)."""
    buffer_size: PositiveInt = 1_000_000
    """Real replay capacity (code ``SimpleReplayPool`` ``max_size: 1e6``)."""
    initial_random_steps: NonNegativeInt = 5000
    """Uniform random env steps before model and SAC training (code ``base.py``
    ``n_initial_exploration_steps: 5000`` for MBPO)."""
    oracle: bool = False
    """Imagine with the task's true model instead of the learned ensemble (the planners'
    ``oracle``): its torch ``dynamics`` where it has them, else the MuJoCo simulator restarted
    from the stored ``info["sim_state"]``\ s; rewards from its ``reward_fn``. Everything else is
    unchanged (the ensemble is still fitted and probed on the same schedule), so the gap between
    the two curves is what model error costs the method. Not in the papers."""


class ModelBasedSAC(Algorithm):
    """SAC learner + :class:`~algorithms.models.learned.LearnedModel`; see the module
    docstring for the loop and the hooks a family overrides."""

    Config = ModelBasedSACConfig
    requires = frozenset({Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """What every model-based SAC agent decides per task: ``-|A|`` as ``sac.target_entropy``
        when left ``None`` (SAC's rule) and the model's per-task fields (default weight decays).
        A family with its own per-task table (MBPO) fills that first. Fields still ``None`` after
        this (``updates_per_step``, ``model.hidden``, ``model.train_every``) are the family's to
        resolve."""
        assert isinstance(config, ModelBasedSACConfig)
        if config.sac.target_entropy is None:
            config = apply_overrides(config, {"sac.target_entropy": -float(task.act_dim)})
        return dataclasses.replace(config, model=config.model.for_task(task))

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        assert isinstance(config, ModelBasedSACConfig)
        if config.oracle:  # the true model scores with the task's own functions
            return cls.requires | {Capability.REWARD_FN, Capability.TERMINATION_FN}
        return cls.requires | config.model.needs()

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        super().check_task(task, config)
        assert isinstance(config, ModelBasedSACConfig)
        if config.oracle:
            check_true_model(cls.name, task)

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        cfg = self.resolve_config(task, config)  # a no-op on a resolved config
        assert isinstance(cfg, ModelBasedSACConfig)
        self.cfg = cfg
        learner_cls = SACLearner if cfg.learner == "sac" else DDPGLearner
        self.learner: ActorCriticLearner = learner_cls(
            task.obs_dim,
            task.act_dim,
            task.act_low,
            task.act_high,
            self.learner_cfg,
            ctx.device,
            ctx.torch_gen,
            obs_dims=task.policy_obs_dims,
        )
        self.value_discount = self.learner_cfg.gamma
        assert cfg.model.hidden is not None, "resolve the config for a task first"
        self.simulator: SimulatorRollout | None = None
        """The true model of a MuJoCo task without torch dynamics (``oracle`` only)."""
        if cfg.oracle and task.dynamics is None:
            from envs.simulate import SimulatorRollout

            self.simulator = SimulatorRollout(task)
        self.data = LearnedModel.from_config(
            task, cfg, ctx, fit_at_episode_end=False, report="update",
            sim_state_dim=0 if self.simulator is None else self.simulator.state_dim,
        )  # fmt: skip
        self._rows: np.ndarray | None = None  # [G, B] rows of sample_batches' real batches
        self.batch_rows: np.ndarray | None = None
        """``[B]`` real-buffer rows of the minibatch being trained on (``None``: not all real):
        oracle target rollouts restart from their simulator states."""

    @property
    def learner_cfg(self) -> SACLearnerConfig | DDPGLearnerConfig:
        """The config of the learner in use (``cfg.sac`` or ``cfg.ddpg``)."""
        return self.cfg.sac if self.cfg.learner == "sac" else self.cfg.ddpg

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

    def state_value(self, obs: np.ndarray) -> float:
        """The critics at ``obs`` under the deterministic policy (:meth:`SACLearner.state_value`)."""
        return self.learner.state_value(obs)

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

    # ------------------------------------------------------------------ imagination
    def imagination(self, *, sample: bool, sim_states: np.ndarray | None = None) -> StepFn:
        """What imagined steps run on: the learned ensemble (a random elite per row and step, its
        Gaussian sampled when ``sample``, the trial's generator), or with ``oracle`` the task's
        true ``dynamics`` or its simulator restarted from ``sim_states [N, S]`` (the rollouts'
        start states). Score its steps with ``reward_fn=self.task.reward_fn``: a model with a
        reward head returns its own, which takes precedence."""
        if not self.cfg.oracle:
            return EnsembleStep(self.model, "ts1", sample=sample, generator=self.ctx.torch_gen)
        if self.simulator is None:
            assert self.task.dynamics is not None
            return self.task.dynamics
        if sim_states is None:
            raise ValueError("oracle rollouts on a MuJoCo task need the start states' sim_states")
        return SimulatorStep(self.simulator, sim_states)

    def sim_states(self, rows: np.ndarray | None, *, next_state: bool = False) -> np.ndarray | None:
        """``[N, S]`` simulator states of real-buffer ``rows`` (of their ``next_obs`` when
        ``next_state``) for :meth:`imagination`; ``None`` unless the oracle is the simulator."""
        if self.simulator is None or rows is None:
            return None
        store = self.buffer.next_sim_state if next_state else self.buffer.sim_state
        return store[rows]

    def after_fit(self) -> dict[str, float]:
        """Called right after each refit (MBPO: model rollouts). Returns metrics to log."""
        return {}

    def sample_batches(self, g: int) -> Batch:
        """``G`` SAC minibatches at once, ``[G, B, ...]``. Default: real transitions only."""
        bs = self.learner_cfg.batch_size
        rows = self.buffer.sample_indices(g * bs)
        self._rows = rows.reshape(g, bs)
        b = self.buffer.get(rows)
        return Batch(*(x.reshape(g, bs, *x.shape[1:]) for x in b))

    def critic_targets(self, batch: Batch) -> torch.Tensor | CriticTargets | None:
        """What the critics regress on for ``batch``: ``None``, SAC's one-step soft TD target;
        a ``[B]`` target (STEVE); or :class:`~algorithms.learners.sac.CriticTargets` rows (MVE:
        the real and the imagined transitions with their k-step targets)."""
        return None

    def train_policy(self) -> dict[str, float]:
        """``G`` SAC updates, their minibatches gathered in one go."""
        g = self.cfg.updates_per_step
        assert g is not None
        self._rows = None
        batches = self.sample_batches(g)
        metrics: dict[str, float] = {}
        for i in range(g):
            batch = Batch(*(x[i] for x in batches))
            self.batch_rows = None if self._rows is None else self._rows[i]
            metrics = self.learner.update(batch, self.critic_targets(batch))
        self.batch_rows = None
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "data": self.data.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.data.load_state_dict(state["data"])
