"""Planning models: what turns the current state into a planner's objective.

A :class:`PlanningModel` is anything with ``ready`` and ``objective(obs, info) -> Objective``,
``Objective = actions [N, H, A] -> returns [N]`` (:mod:`algorithms.planners.optimizers`). The MPC
agent (:mod:`algorithms.agents.mpc`) picks one in its constructor and hands every objective to its
trajectory optimizer, which knows nothing of models. Three implementations, all scored by the
task's own ``reward_fn`` / ``termination_fn`` with :func:`~algorithms.planners.rollout.rollout`'s
termination rule:

- :class:`EnsembleModel`: a :class:`~algorithms.models.ensemble.ProbabilisticEnsemble` with PETS's
  propagation (``ts1``, ``tsinf``, ``mean``): ``P`` particles per sequence, one ensemble call on
  ``N * P`` rows per horizon step;
- :class:`DynamicsModel`: the task's torch ``dynamics`` (deterministic: one particle);
- :class:`SimulatorModel`: the MuJoCo simulator itself from ``info["sim_state"]``
  (:class:`envs.simulate.SimulatorRollout`: one ``mujoco.rollout`` call for all ``N x H`` steps).

A new kind of model (a latent world model scored by its own reward and value heads) is one more
class with these two members.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from algorithms.models.ensemble import EnsembleStep, ProbabilisticEnsemble
from algorithms.planners.optimizers import Objective
from algorithms.planners.rollout import StepFn, rollout, score_trajectories
from envs.spec import TaskSpec, TerminationFn


def check_true_model(algo: str, task: TaskSpec) -> None:
    """Before any trial: an ``oracle=true`` plugin needs the task's torch dynamics or its MuJoCo
    simulator (:class:`DynamicsModel`, :class:`SimulatorModel`, :class:`SimulatorStep`)."""
    from algorithms.api import ConfigError
    from envs.spec import Capability

    if not (task.has(Capability.DYNAMICS) or task.has(Capability.SIMULATOR)):
        raise ConfigError(
            f"{algo} with oracle=true needs the task's torch dynamics or its MuJoCo simulator; "
            f"task {task.name!r} has neither. Use oracle=false or a task with 'dynamics' or "
            "'simulator' (see `make list`)."
        )


@runtime_checkable
class PlanningModel(Protocol):
    """The model an MPC agent plans with."""

    @property
    def ready(self) -> bool:
        """Whether there is a model to plan with (a learned one: fitted at least once)."""
        ...

    def objective(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> Objective:
        """``actions [N, H, A] -> predicted returns [N]`` from the state of observation
        ``obs [O]`` (and ``info``, the env's step info, for models that need more than the
        observation)."""
        ...


class StepModel(ABC):
    """A model stepped one horizon step at a time by :func:`rollout` (base of
    :class:`DynamicsModel` and :class:`EnsembleModel`).

    Args:
        task: the task (``reward_fn``, ``termination_fn``).
        gamma: discount inside the horizon.
        particles: ``P`` rollouts per sequence, returns averaged.
        device: where observations and rollouts live.
    """

    def __init__(
        self,
        task: TaskSpec,
        *,
        gamma: float,
        particles: int = 1,
        device: Any = None,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        self.task, self.gamma, self.particles, self.device = task, gamma, particles, device
        self.termination_fn = task.termination_fn if termination_fn is None else termination_fn

    @property
    def ready(self) -> bool:
        return True

    @abstractmethod
    def step_fn(self) -> StepFn:
        """The step function of ONE objective call (a fresh one per call: ``tsinf`` draws its
        particle assignment on the first step of each rollout)."""

    def objective(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> Objective:
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

        def predict(actions: torch.Tensor) -> torch.Tensor:
            n = actions.shape[0]
            return rollout(
                self.step_fn(),
                o.reshape(1, -1).expand(n, -1),
                actions,
                reward_fn=self.task.reward_fn,
                termination_fn=self.termination_fn,
                gamma=self.gamma,
                particles=self.particles,
            ).returns

        return predict


class DynamicsModel(StepModel):
    """The task's true torch ``dynamics`` (oracle ablation; one particle: it is deterministic)."""

    def __init__(self, task: TaskSpec, *, gamma: float, device: Any = None) -> None:
        if task.dynamics is None:
            raise ValueError(
                f"task {task.name!r} has no torch dynamics: use SimulatorModel for a MuJoCo task "
                "or EnsembleModel for a learned one"
            )
        super().__init__(task, gamma=gamma, particles=1, device=device)

    def step_fn(self) -> StepFn:
        return self.task.dynamics  # type: ignore[return-value]


class EnsembleModel(StepModel):
    """A learned :class:`ProbabilisticEnsemble` with PETS's trajectory sampling.

    Args:
        ensemble: the model (fitted elsewhere, e.g. by a
            :class:`~algorithms.models.learned.LearnedModel`; read at every call).
        task: the task (``reward_fn``, ``termination_fn``; a reward head replaces ``reward_fn``
            when the ensemble learns the reward).
        propagation: ``"ts1"``, ``"tsinf"`` or ``"mean"`` (PETS Sec. 5).
        sample: sample the Gaussian next state instead of taking its mean.
        particles: ``P`` rollouts per sequence.
        gamma: discount inside the horizon.
        generator: the run's torch generator (bootstrap assignments, sampled next states).
        device: where observations and rollouts live.
        termination_fn: what ends rollouts (``None``: the task's; a learned predictor on a task
            without one, :attr:`~algorithms.models.learned.LearnedModel.termination_fn`).
    """

    def __init__(
        self,
        ensemble: ProbabilisticEnsemble,
        task: TaskSpec,
        *,
        propagation: Literal["ts1", "tsinf", "mean"],
        sample: bool,
        particles: int,
        gamma: float,
        generator: torch.Generator | None = None,
        device: Any = None,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        super().__init__(
            task, gamma=gamma, particles=particles, device=device, termination_fn=termination_fn
        )
        self.ensemble, self.propagation = ensemble, propagation
        self.sample, self.generator = sample, generator

    @property
    def ready(self) -> bool:
        return self.ensemble.fitted

    def step_fn(self) -> StepFn:
        return EnsembleStep(
            self.ensemble, self.propagation, sample=self.sample, generator=self.generator
        )


class SimulatorModel:
    """The MuJoCo simulator itself, rolled out from ``info["sim_state"]`` (oracle ablation on a
    MuJoCo task: the observation alone does not give the state, e.g. Ant's and Humanoid's hidden
    parts). Whole trajectories are simulated at once, then scored by
    :func:`~algorithms.planners.rollout.score_trajectories`.

    Args:
        task: a task with ``Capability.SIMULATOR``.
        gamma: discount inside the horizon.
        device: where observations live.
    """

    def __init__(self, task: TaskSpec, *, gamma: float, device: Any = None) -> None:
        from envs.simulate import SimulatorRollout

        if task.reward_fn is None:
            raise ValueError(f"task {task.name!r} has no reward_fn to score simulated rollouts")
        self.task, self.gamma, self.device = task, gamma, device
        self.simulator = SimulatorRollout(task)

    @property
    def ready(self) -> bool:
        return True

    def objective(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> Objective:
        if info is None or "sim_state" not in info:
            raise RuntimeError(
                "oracle=true on a MuJoCo task needs info['sim_state']: pass the env's step "
                "info to act(obs, info=info)"
            )
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        state = np.asarray(info["sim_state"])
        task = self.task

        def simulate(actions: torch.Tensor) -> torch.Tensor:
            seq = self.simulator(state, actions, obs=o)
            return score_trajectories(
                seq,
                actions,
                reward_fn=task.reward_fn,  # type: ignore[arg-type]
                termination_fn=task.termination_fn,
                gamma=self.gamma,
            )

        return simulate


class SimulatorStep:
    """A :data:`~algorithms.planners.rollout.StepFn` on the MuJoCo simulator for ``N`` rollouts
    whose simulator states it holds (a model-based SAC agent's oracle rollouts of its policy,
    restarted from stored ``info["sim_state"]``\ s). Each call is one batched
    :meth:`envs.simulate.SimulatorRollout.step` of every row; the observations passed in are
    ignored (the states are the truth) and the next observations returned.

    Args:
        simulator: the task's :class:`envs.simulate.SimulatorRollout`.
        states: ``[N, S]`` float64 start states, row ``i`` the state of rollout ``i``'s start.
    """

    def __init__(self, simulator: Any, states: np.ndarray | torch.Tensor) -> None:
        self.simulator = simulator
        self.states = torch.as_tensor(np.asarray(states, np.float64))

    def __call__(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if act.shape[0] != self.states.shape[0]:
            raise ValueError(
                f"SimulatorStep holds {self.states.shape[0]} rollouts, got {act.shape[0]} actions: "
                "call compact(keep) when rollouts end"
            )
        self.states, nxt = self.simulator.step(self.states, act)
        return nxt

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the rows where ``keep [N]`` (bool) is set."""
        self.states = self.states[keep.cpu()]


class LatentModel:
    """A latent world model scored by its own heads (TD-MPC's and TD-MPC2's planning objective;
    nicklashansen/tdmpc2 ``TDMPC2._estimate_value``): from ``z = encode(obs)``,

        ``R = sum_t gamma^t alive_t rhat(z_t, a_t) + gamma^H alive_H Q_avg(z_H, pi(z_H))``

    with ``alive`` cut once the termination head says ``p > 0.5`` (episodic models only). Actions
    are in the world model's ``[-1, 1]`` box (the agent maps them to the env's bounds).

    Args:
        model: a :class:`~algorithms.models.world_model.WorldModel` (read at every call).
        gamma: discount.
        device: where observations and rollouts live.
        ready: whether there is a model to plan with (a callable: the agent's seed phase).
    """

    def __init__(self, model: Any, *, gamma: float, device: Any, ready: Any = None) -> None:
        self.model, self.gamma, self.device = model, gamma, device
        self._ready = ready

    @property
    def ready(self) -> bool:
        return True if self._ready is None else bool(self._ready())

    def encode(self, obs: np.ndarray) -> torch.Tensor:
        """``[O] -> [1, L]``."""
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        return self.model.encode(o.reshape(1, -1))

    def value(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``z [1 or N, L]``, ``actions [N, H, A] -> [N]`` discounted model returns."""
        m = self.model
        n, h = actions.shape[:2]
        z = z.expand(n, -1)
        total = torch.zeros(n, 1, device=z.device)
        alive = torch.ones(n, 1, device=z.device)
        discount = 1.0
        for t in range(h):  # H is 3: a loop over horizon steps, each a batched op over N
            a = actions[:, t]
            total += discount * alive * m.twohot.decode(m.reward(z, a)).unsqueeze(-1)
            z = m.next(z, a)
            discount *= self.gamma
            if m.shape.episodic:
                alive = alive * (m.termination(z) <= 0.5)
        a, _ = m.pi(z)
        total += discount * alive * m.q_value(z, a, reduce="avg")
        return total.squeeze(-1)

    def objective(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> Objective:
        z = self.encode(obs)
        return lambda actions: self.value(z, actions)

    def policy_rollouts(self, obs: np.ndarray, count: int, horizon: int) -> torch.Tensor:
        """``[count, H, A]``: the policy prior's own trajectories in the model from ``obs`` (the
        proposals TD-MPC2 mixes into every MPPI iteration, ``num_pi_trajs``)."""
        z = self.encode(obs).expand(count, -1)
        out = []
        for t in range(horizon):
            a, _ = self.model.pi(z)
            out.append(a)
            if t < horizon - 1:
                z = self.model.next(z, a)
        return torch.stack(out, dim=1)
