"""Task description: what an algorithm may know about an environment.

A :class:`TaskEntry` is a lazy registry record (strings only, nothing imported).
:meth:`TaskEntry.resolve` turns it into a :class:`TaskSpec`, the object algorithms see.

Conventions for every function a task carries (batched torch, differentiable where the math is):

- ``reward_fn(obs, act, next_obs) -> reward``: ``obs``/``next_obs`` are ``[..., O]``, ``act`` is
  ``[..., A]`` (continuous, in the env's own action units) or one-hot ``[..., n]`` (discrete);
  the result is ``[...]``. It equals what ``env.step`` returns (checked by the contract test).
- ``termination_fn(obs, act, next_obs) -> done``: same shapes, bool ``[...]``; equals ``terminated``
  (not ``truncated``: time limits are the driver's business).
- ``dynamics(obs, act) -> next_obs``: the true transition in torch, ``[..., O]``.

MuJoCo tasks may instead (or also) offer the simulator itself: ``Capability.SIMULATOR`` means the
env puts its full physics state in ``info["sim_state"]`` *and* :class:`envs.simulate.SimulatorRollout`
can roll that state forward in batch and return exactly the observations ``env.step`` would. A task
gets it when its :class:`TaskEntry` has both ``simulator=True`` and a ``state_to_obs`` entry point (a
:class:`StateObservation`: how the observation follows from simulator states). A task that only
sets ``simulator=True`` still exports ``info["sim_state"]`` but does not advertise the capability.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import torch

Tensor = torch.Tensor
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
DynamicsFn = Callable[[Tensor, Tensor], Tensor]
#: ``linearize(obs, act) -> (A [O, O], B [O, A])``: discrete-time Jacobians of one env step.
LinearizeFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class Capability(StrEnum):
    """What a task offers and what an algorithm may require of it."""

    REWARD_FN = "reward_fn"
    """Batched torch reward function ``(obs, act, next_obs)``."""
    TERMINATION_FN = "termination_fn"
    """Batched torch termination function ``(obs, act, next_obs)``."""
    DYNAMICS = "dynamics"
    """Differentiable torch dynamics ``(obs, act) -> next_obs`` (true model, oracle ablations)."""
    LINEARIZATION = "linearization"
    """Jacobians of one env step around a point, plus an equilibrium (for LQR)."""
    SIMULATOR = "simulator"
    """The env puts its full MuJoCo state in ``info["sim_state"]`` and
    :class:`envs.simulate.SimulatorRollout` reproduces ``env.step``'s observations from it (true-model
    "oracle" planners). Needs ``TaskEntry.simulator`` and ``TaskEntry.state_to_obs``."""
    CONTINUOUS_ACTIONS = "continuous_actions"
    """A ``Box`` action space."""
    DISCRETE_ACTIONS = "discrete_actions"
    """A ``Discrete`` action space."""


def load(ref: str | None) -> Any:
    """Import ``"package.module:attr"`` lazily (Gymnasium-style entry point)."""
    if ref is None:
        return None
    module, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"entry point {ref!r} must look like 'package.module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class StateObservation:
    """How a MuJoCo task's observation follows from simulator states (:mod:`envs.simulate`).

    Most observations are functions of ``(qpos, qvel)``. Some also read quantities MuJoCo derives
    *during* ``mj_step`` (with the RK4 integrator, body positions of the last RK4 stage rather than
    of the final ``qpos``; constraint forces): those are the ``stage`` values, read by
    :attr:`stage` from an ``mjData`` that has just taken the env's last physics substep.
    """

    from_state: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
    """``(qpos [..., nq], qvel [..., nv], stage [..., K] | None) -> obs [..., O]`` (numpy float64,
    vectorised over the leading dims; ``stage`` is ``None`` exactly when :attr:`stage` is)."""
    stage: Callable[[Any, Any], np.ndarray] | None = None
    """``(model, data) -> [K]`` read right after ``mj_step`` (what the env's ``_get_obs`` reads
    from ``data`` beyond ``qpos``/``qvel``); ``None`` when the observation needs nothing else."""


@dataclass(frozen=True)
class SaturatingCost:
    """A task's cost as PILCO's saturating cost, and the state it is written in (pilco-matlab's
    per-scenario ``settings_*.m`` and ``loss_*.m``; Deisenroth, Fox & Rasmussen, TPAMI 2015).

    Moment-matching methods need the cost as ``1 - exp(-|a - z|_W^2 / 2)``, ``W = Q / width^2``,
    with ``a = [state, sin a_1, cos a_1, ...]`` the state augmented by the sin and cos of its angle
    dims ``a_i`` (pilco-matlab's ``angi``, in ``gTrig``'s interleaved order): a Gaussian state
    gives its expectation in closed form, which the general ``reward_fn(obs, act, next_obs)`` does
    not. The state is the observation, or :attr:`obs_to_state` of it. The fields after
    :attr:`width` are the scenario's other settings that go with this state: which parts of ``a``
    the dynamics model and the policy see, the horizon and the start distribution ``p(x_0)``.
    """

    angle_dims: tuple[int, ...]
    """State dims that are angles (``angi``)."""
    target: tuple[float, ...]
    """``z``: the target in ``a`` coordinates."""
    weight: tuple[tuple[float, ...], ...]
    """``Q`` on ``a`` (the cost uses ``W = Q / width^2``)."""
    width: float
    """``width`` of the cost (``cost.width``)."""
    dyn_inputs: tuple[int, ...]
    """Indices into ``a`` fed to the dynamics model (before the action): pilco-matlab ``dyni``."""
    policy_inputs: tuple[int, ...]
    """Indices into ``a`` fed to the policy: ``poli``."""
    policy_lengthscales: tuple[float, ...]
    """Initial RBF length-scales per policy input (``policy.p.hyp`` of the settings file)."""
    horizon: int
    """Prediction horizon ``H`` in control steps (``T / dt``)."""
    init_mean: tuple[float, ...]
    """``mu0``: the mean of ``p(x_0)``."""
    init_cov: tuple[tuple[float, ...], ...]
    """``S0``: the covariance of ``p(x_0)`` (of each start distribution)."""
    start_means: tuple[tuple[float, ...], ...] = ()
    """Several start distributions ``N(mu_k, init_cov)``: when given (``init_mean`` unused), the
    optimized cost is the mean of the ``K`` rollouts' expected costs (pilco-matlab ``value.m``
    with a matrix of start means, one rollout per column). ``()``: one start, ``init_mean``."""
    obs_to_state: Callable[[np.ndarray], np.ndarray] | None = None
    """``[N, O] -> [N, S]``: the state of observations (``None``: the observation)."""
    wrap_dims: tuple[int, ...] = ()
    """State dims whose one-step change is wrapped to ``[-pi, pi)`` (angles observed modulo
    ``2 pi``: a model's target is the unwrapped change)."""


@dataclass(frozen=True)
class TaskEntry:
    """A registry record. Every callable is a lazy ``"module:attr"`` string."""

    name: str
    """Short key used on the command line and in results (``pendulum``, ``hopper``)."""
    make: str
    """Entry point of a zero-argument-plus-kwargs factory returning a ``gymnasium.Env``."""
    max_episode_steps: int
    """Episode length (time-limit truncation) used for training and evaluation."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``make``."""
    reward_fn: str | None = None
    termination_fn: str | None = None
    dynamics: str | None = None
    linearize: str | None = None
    """Entry point of ``linearize(obs, act) -> (A, B)``; derived from ``dynamics`` when absent."""
    equilibrium: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """``(obs*, act*)`` the task is to be stabilised at (upright pole), for LQR."""
    simulator: bool = False
    """True when the env puts its MuJoCo state in ``info["sim_state"]``."""
    state_to_obs: str | None = None
    """Entry point of the task's :class:`StateObservation` (``"module:SIM_OBS"``). With
    ``simulator`` it gives the ``SIMULATOR`` capability (:class:`envs.simulate.SimulatorRollout`)."""
    angle_dims: tuple[int, ...] = ()
    """Observation dims that are unbounded angles: learned models see their sin and cos instead
    (PETS's ``obs_preproc`` for cart-pole)."""
    reward_only_dims: tuple[int, ...] = ()
    """Observation dims kept only so that ``reward_fn(obs, act, next_obs)`` can be computed (the
    root x of the locomotion tasks). Policies, value functions and the inputs of learned models
    leave them out, which gives the standard observation (PETS's ``obs_preproc`` for
    half-cheetah, MBPO's observations); learned models still predict their change."""
    saturating_cost: str | None = None
    """Entry point of the task's :class:`SaturatingCost` (``"module:SATURATING_COST"``), for
    moment-matching methods (PILCO); ``None``: the task has none."""
    tags: tuple[str, ...] = ()
    """Free labels: ``classic``, ``mujoco``, ``discrete``, ``locomotion`` ..."""

    @property
    def score(self):
        """The task's score normalisation (:class:`envs.scores.ScoreReference`: its random and
        reference returns with their sources), or ``None`` where it has no reference."""
        from envs.scores import score_reference

        return score_reference(self.name)

    def make_env(self, **overrides: Any):
        """A fresh env with the registry's time limit."""
        import gymnasium as gym

        env = load(self.make)(**{**self.kwargs, **overrides})
        return gym.wrappers.TimeLimit(env, max_episode_steps=self.max_episode_steps)

    def resolve(self) -> TaskSpec:
        """Import the task's functions and read its spaces (builds one env, then closes it)."""
        import gymnasium as gym

        env = self.make_env()
        try:
            obs_space, act_space = env.observation_space, env.action_space
        finally:
            env.close()
        discrete = isinstance(act_space, gym.spaces.Discrete)
        if discrete:
            act_dim = int(act_space.n)
            low = np.zeros(act_dim, np.float32)
            high = np.ones(act_dim, np.float32)
        else:
            act_dim = int(np.prod(act_space.shape))
            low = np.asarray(act_space.low, np.float32).reshape(-1)
            high = np.asarray(act_space.high, np.float32).reshape(-1)
        dynamics = load(self.dynamics)
        linearize = load(self.linearize)
        if linearize is None and dynamics is not None:
            from envs.linearize import jacobian_linearizer

            linearize = jacobian_linearizer(dynamics)
        saturating_cost = load(self.saturating_cost)
        if saturating_cost is not None and not isinstance(saturating_cost, SaturatingCost):
            raise TypeError(
                f"task {self.name!r}: saturating_cost {self.saturating_cost!r} must name an "
                f"envs.spec.SaturatingCost, not a {type(saturating_cost).__name__}"
            )
        caps = {Capability.DISCRETE_ACTIONS if discrete else Capability.CONTINUOUS_ACTIONS}
        if self.reward_fn:
            caps.add(Capability.REWARD_FN)
        if self.termination_fn:
            caps.add(Capability.TERMINATION_FN)
        if dynamics is not None:
            caps.add(Capability.DYNAMICS)
        if linearize is not None and self.equilibrium is not None:
            caps.add(Capability.LINEARIZATION)
        if self.simulator and self.state_to_obs is not None:
            caps.add(Capability.SIMULATOR)
        return TaskSpec(
            name=self.name,
            obs_dim=int(np.prod(obs_space.shape)),
            act_dim=act_dim,
            discrete=discrete,
            act_low=low,
            act_high=high,
            max_episode_steps=self.max_episode_steps,
            reward_fn=load(self.reward_fn),
            termination_fn=load(self.termination_fn),
            dynamics=dynamics,
            linearize=linearize,
            equilibrium=(
                None
                if self.equilibrium is None
                else (
                    np.asarray(self.equilibrium[0], np.float64),
                    np.asarray(self.equilibrium[1], np.float64),
                )
            ),
            capabilities=frozenset(caps),
            angle_dims=tuple(self.angle_dims),
            reward_only_dims=tuple(self.reward_only_dims),
            saturating_cost=saturating_cost,
            entry=self,
        )


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """Everything an algorithm is told about a task. Built by :meth:`TaskEntry.resolve`."""

    name: str
    obs_dim: int
    act_dim: int
    """Action dimension (continuous) or number of actions (discrete)."""
    discrete: bool
    act_low: np.ndarray
    """``[A]`` lower action bound (zeros for discrete tasks)."""
    act_high: np.ndarray
    """``[A]`` upper action bound (ones for discrete tasks)."""
    max_episode_steps: int
    reward_fn: RewardFn | None
    termination_fn: TerminationFn | None
    dynamics: DynamicsFn | None
    linearize: LinearizeFn | None
    equilibrium: tuple[np.ndarray, np.ndarray] | None
    capabilities: frozenset[Capability]
    angle_dims: tuple[int, ...]
    """See :attr:`TaskEntry.angle_dims`."""
    entry: TaskEntry
    reward_only_dims: tuple[int, ...] = ()
    """See :attr:`TaskEntry.reward_only_dims`."""
    saturating_cost: SaturatingCost | None = None
    """See :attr:`TaskEntry.saturating_cost` (loaded)."""

    @property
    def policy_obs_dims(self) -> tuple[int, ...]:
        """The observation dims a policy or value function sees (all but ``reward_only_dims``)."""
        return tuple(i for i in range(self.obs_dim) if i not in self.reward_only_dims)

    def make_env(self, **overrides: Any):
        """A fresh env of this task (see :meth:`TaskEntry.make_env`)."""
        return self.entry.make_env(**overrides)

    def has(self, cap: Capability) -> bool:
        return cap in self.capabilities
