"""``ilqg``: receding-horizon iLQG (MPC), after Tassa, Erez & Todorov 2012 ("Synthesis and
stabilization of complex behaviors through online trajectory optimization") with the control-limited
backward pass of Tassa, Mansard & Todorov 2014 ("Control-limited differential dynamic programming").

At every env step the agent re-optimizes an ``H``-step control sequence from the current state with
a few iLQG iterations (:func:`algorithms.planners.ilqg.ilqg`), warm-started from its previous plan
shifted by one step (the last control repeated) and from the previous regularization ``mu``, and
executes the first control. There is one warm-start slot per value of ``explore`` (evaluation
episodes may interleave with a training episode). The cost is ``-reward_fn``; the plan ignores
``termination_fn``. iLQG is deterministic: ``explore`` changes nothing but the slot, so training
episodes are already evaluation-quality (``eval_episodes=0`` suits true-model runs).

Models and derivatives (:mod:`algorithms.planners.derivatives`, and
:mod:`algorithms.planners.mujoco_problem` for the simulator):

- ``oracle=True`` (the default) on a task with torch ``dynamics``: autograd (``torch.func``) of the dynamics
  and reward, the whole horizon in one call;
- ``oracle=True`` on a MuJoCo task with ``Capability.SIMULATOR`` (no torch dynamics): the
  simulator itself from ``info["sim_state"]``; dynamics derivatives by ``mjd_transitionFD``, or
  on RK4 models (which ``mjd_transitionFD`` refuses) by batched central differences of the env
  step; the cost quadratized by finite differences of the task's observation map;
- ``oracle=False``: a PETS/MBPO probabilistic ensemble (the nested ``model`` config) fitted on the real transitions (one
  episode of uniform random actions, then a refit after every training episode, as ``pets``),
  planned on through its elites' mean prediction and differentiated by autograd: on Pendulum it
  often plans as well as the true model after one episode, not reliably (measured returns, seeds
  and commands: ``docs/algorithms/ilqg.md``).

Planning cost per env step: one rollout of the shifted plan, then up to ``iterations`` x (one
derivative evaluation along the plan, one backward pass of ``H`` small dense solves, one line
search: the 11 step sizes rolled out at once for torch models, tried in turn on the simulator).
An episode's first step solves from several cold starts (``initial_plans``, ``initial_horizon``,
``initial_iterations``). The cart-pole's RK4 dynamics dominate its derivatives; measured step
times (``benchmark/perf/ilqg.py``): ``docs/performance.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    ConfigError,
    NonNegativeFloat,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    Range,
    RunContext,
)
from algorithms.models.learned import LearnedModel, LearnedModelHooks, PlannerConfig
from algorithms.planners.derivatives import SOLVER_DTYPE, AutogradProblem, EnsembleProblem, Problem
from algorithms.planners.ilqg import ILQGOptions, ILQGResult, ilqg
from algorithms.planners.mujoco_problem import MujocoProblem
from envs.spec import TaskSpec


@dataclass(frozen=True)
class ILQGConfig(PlannerConfig):
    """Receding-horizon iLQG. Solver constants: Tassa's ``iLQG.m``/``boxQP.m`` (MathWorks File
    Exchange 52069, the code of Tassa et al. 2014) and Tassa et al. 2012. ``horizon``,
    ``iterations`` and the cold-start settings are this benchmark's, measured on Pendulum, the
    cart-pole swing-up and InvertedDoublePendulum (the papers re-optimize in real time for as long
    as the controller's period allows; a step-synchronous benchmark fixes the iterations per env
    step instead). Model settings: MBPO/PETS, as :mod:`algorithms.agents.mpc`."""

    oracle: bool = True
    """Plan with the true model: the task's torch ``dynamics`` (autograd), else its MuJoCo
    simulator (finite differences); ``False``: the ensemble fitted on the real data (its mean,
    settings in ``model``)."""
    horizon: PositiveInt = 30
    """Planning horizon H in env steps (1.5 s at the 0.05 s step of all three tasks). Not from the
    papers. Measured: 20 does as well on Pendulum and 40 on the cart-pole; InvertedDoublePendulum
    needs ~30 (at 10-20 it let the cart drift into the end of its rail and fall within 70
    steps)."""
    iterations: PositiveInt = 3
    """iLQG iterations per env step at most (``iLQG.m`` runs up to 500 offline). With the shifted
    warm start ~1.3 run on average (the rest stop converged); 10 gave the same Pendulum returns."""
    mu_init: NonNegativeFloat = 1.0
    """Initial LM regularization ``mu`` at an episode start (``iLQG.m`` ``lambda = 1``); later
    steps start from the previous step's ``mu`` (``warm_start_mu``)."""
    mu_min: PositiveFloat = 1e-6
    """``mu`` below this is set to 0 (Tassa 2012, ``iLQG.m`` ``lambdaMin``)."""
    mu_max: PositiveFloat = 1e10
    """Give up an MPC step's optimization above this ``mu`` (``iLQG.m`` ``lambdaMax``)."""
    mu_factor: Annotated[float, Range(gt=1)] = 1.6
    """``mu`` growth/shrink factor ``Delta_0`` (``iLQG.m`` ``lambdaFactor = 1.6``)."""
    regularization: Literal["state", "control"] = "state"
    """``"state"``: ``V_xx + mu I`` (Tassa 2012); ``"control"``: ``Q_uu + mu I``."""
    warm_start_mu: bool = True
    """Carry ``mu`` (capped at ``mu_init``) from one MPC step to the next, else restart at
    ``mu_init``. Our choice: the shifted problem is nearly the same one, so is its conditioning."""
    control_limits: Literal["boxqp", "clamp"] = "boxqp"
    """``"boxqp"``: Tassa 2014's box-QP backward pass; ``"clamp"``: unconstrained backward pass,
    controls clamped in the forward pass (the 2014 paper's baseline)."""
    line_search_steps: PositiveInt = 11
    """Step sizes ``alpha = 10 ** linspace(0, log10(line_search_min), steps)`` (``iLQG.m``: 11)."""
    line_search_min: PositiveFraction = 1e-3
    """Smallest step size (``iLQG.m``: ``10^-3``)."""
    line_search: Literal["auto", "parallel", "serial"] = "auto"
    """``"parallel"``: roll every step size out at once, keep the best (``iLQG.m``'s default);
    ``"serial"``: backtrack. ``"auto"``: parallel for torch models, serial for the simulator
    (whose rollouts are per row)."""
    z_min: NonNegativeFloat = 0.0
    """Accept a step when actual/expected reduction exceeds this (``iLQG.m`` ``zMin = 0``)."""
    tol_rel: NonNegativeFloat = 1e-6
    """Stop an MPC step's iterations once the relative improvement is below this (``iLQG.m``
    uses an absolute ``tolFun = 1e-7``)."""
    tol_grad: NonNegativeFloat = 1e-4
    """``iLQG.m``'s gradient stopping test (``tolGrad``)."""
    initial_iterations: PositiveInt = 30
    """iLQG iterations at an episode's first step (no warm start yet), per initial plan. Our
    choice, like ``initial_plans``: from a cold start the few iterations of ``iterations`` stop
    far from any optimum (the cart-pole's flat reward far from upright makes early steps small)."""
    initial_horizon: PositiveInt = 10
    """An episode's first plan is also solved by continuation: on this horizon first, then on
    twice that (the plan extended by its last control and re-optimized), up to ``horizon``; the
    better of that and the direct solve is kept (``>= horizon``: direct only). Our choice, not in
    the papers: from a constant initial plan a long rollout of an unstable system ends far from
    upright (InvertedDoublePendulum falls within 1.5 s) and iLQG, a local method, then optimizes
    a swing back up instead of a catch (the episode ends within 5 steps); the cart-pole swing-up
    needs the direct solve instead (short horizons see only the flat reward at the bottom)."""
    initial_plans: tuple[Annotated[float, Range(ge=-1, le=1)], ...] = (0.0, -1.0, 1.0)
    """Constant control sequences an episode's first plan starts from, in box units (-1 the lower
    bound, 0 the midpoint, 1 the upper bound); the start whose optimized cost is lowest is kept
    and later steps warm-start from it. Our choice, not in the papers: iLQG converges to the local
    optimum nearest its initial guess, and from the midpoint alone Pendulum falls the long way
    round from a near-upright start (-125 instead of -1 on seed 3)."""
    cost_hessian: Literal["exact", "gauss_newton"] = "gauss_newton"
    """Torch models: ``"exact"`` Hessian of ``l(x, u) = -reward(x, u, f(x, u))``, or
    ``"gauss_newton"``: the reward's Hessian in ``(x, u, x')`` chained through the linearized
    step, dropping ``f``'s curvature as iLQG does for the dynamics (Li & Todorov 2004). Measured:
    the same Pendulum return; derivatives ~3x cheaper on the RK4 cart-pole (14 vs. 44 ms for
    H = 40; >= 30x on the learned ensemble, whose step Jacobian then needs no ``torch.func``). The
    simulator always uses the latter."""
    fd_eps: PositiveFloat = 1e-6
    """Simulator: finite-difference step of the dynamics derivatives (``mjd_transitionFD``'s
    ``eps``; 1e-6 as ``envs.mujoco.inverted_pendulum.linearize``)."""
    cost_fd_eps: PositiveFloat = 1e-4
    """Simulator: step of the cost's second differences (see :class:`MujocoProblem`)."""

    def options(self, *, batched: bool) -> ILQGOptions:
        """The solver settings for one MPC step."""
        alphas = tuple(
            float(a)
            for a in np.logspace(0.0, np.log10(self.line_search_min), self.line_search_steps)
        )
        if self.line_search == "auto":
            line_search = "parallel" if batched else "serial"
        else:
            line_search = self.line_search
        return ILQGOptions(
            max_iterations=self.iterations,
            mu_init=self.mu_init,
            mu_factor=self.mu_factor,
            mu_min=self.mu_min,
            mu_max=self.mu_max,
            regularization=self.regularization,
            control_limits=self.control_limits,
            alphas=alphas,
            line_search=line_search,  # type: ignore[arg-type]
            z_min=self.z_min,
            tol_rel=self.tol_rel,
            tol_grad=self.tol_grad,
        )


def _final_cost(res: ILQGResult) -> float:
    return res.costs[-1]


@dataclass
class _Slot:
    """One warm start: the previous plan and regularization."""

    plan: torch.Tensor | None = None
    mu: float | None = None
    dmu: float | None = None


class ILQG(LearnedModelHooks, Algorithm):
    """Receding-horizon iLQG on the true model (autograd or simulator) or a learned ensemble."""

    name = "ilqg"
    Config = ILQGConfig
    requires = frozenset({Capability.REWARD_FN, Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        assert isinstance(config, ILQGConfig)
        if task.discrete:
            raise ConfigError(
                f"ilqg optimizes continuous controls; task {task.name!r} has discrete actions. "
                "Pick a task with a Box action space (see `make list`)."
            )
        super().check_task(task, config)
        if config.oracle and not (task.has(Capability.DYNAMICS) or task.has(Capability.SIMULATOR)):
            raise ConfigError(
                f"ilqg with oracle=true needs the task's torch dynamics or its MuJoCo simulator; "
                f"task {task.name!r} has neither. Use oracle=false or a task with 'dynamics' "
                "or 'simulator' (see `make list`)."
            )
        sizes = (
            config.horizon,
            config.iterations,
            config.initial_iterations,
            config.initial_horizon,
        )
        if min(sizes) < 1:
            raise ConfigError(
                "ilqg needs horizon, iterations, initial_iterations and initial_horizon >= 1, got "
                f"{sizes}"
            )
        if not config.initial_plans or any(abs(p) > 1.0 for p in config.initial_plans):
            raise ConfigError(
                f"ilqg needs initial_plans in [-1, 1] (box units), got {config.initial_plans}"
            )
        if config.line_search_steps < 1 or not 0.0 < config.line_search_min <= 1.0:
            raise ConfigError(
                "ilqg needs line_search_steps >= 1 and 0 < line_search_min <= 1, got "
                f"{config.line_search_steps}, {config.line_search_min}"
            )
        if config.mu_factor <= 1.0:
            raise ConfigError(f"ilqg needs mu_factor > 1, got {config.mu_factor}")

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        assert isinstance(config, ILQGConfig)
        self.check_task(task, config)
        assert task.reward_fn is not None
        self.cfg = config
        self.low = torch.as_tensor(task.act_low, dtype=SOLVER_DTYPE)
        self.high = torch.as_tensor(task.act_high, dtype=SOLVER_DTYPE)
        self.data: LearnedModel | None = None
        """The learned model: ensemble, replay, probe, refit schedule (``None`` with ``oracle``)."""
        self.simulator: MujocoProblem | None = None
        self.problem: Problem
        if not config.oracle:
            # the planner differentiates through the model: float32 weights on the CPU
            self.data = config.learned_model(task, ctx, device="cpu")
            self.problem = EnsembleProblem(
                self.data.model, task.reward_fn, cost_hessian=config.cost_hessian
            )
        elif task.dynamics is not None:
            self.problem = AutogradProblem(
                task.dynamics,
                task.reward_fn,
                task.obs_dim,
                task.act_dim,
                cost_hessian=config.cost_hessian,
            )
        else:
            self.simulator = MujocoProblem(task, eps=config.fd_eps, cost_eps=config.cost_fd_eps)
            self.problem = self.simulator
        self.options = config.options(batched=self.problem.batched)
        self.first_options = dataclasses.replace(
            self.options, max_iterations=config.initial_iterations
        )
        self.slots = {True: _Slot(), False: _Slot()}
        self._plan_sums: dict[str, tuple[float, int]] = {}
        self.last_result: ILQGResult | None = None
        """The solver's result of the latest plan (diagnostics, ``benchmark/perf/ilqg.py``)."""

    # ------------------------------------------------------------------ planning
    @property
    def ready(self) -> bool:
        """Whether there is a model to plan with."""
        return self.data is None or self.data.model.fitted

    def _initial_state(self, obs: np.ndarray, info: Mapping[str, Any] | None) -> torch.Tensor:
        if self.simulator is not None:
            if info is None or "sim_state" not in info:
                raise RuntimeError("ilqg with oracle=true on a MuJoCo task needs info['sim_state']")
            return self.simulator.initial_state(np.asarray(info["sim_state"]))
        return torch.as_tensor(np.asarray(obs, np.float64), dtype=SOLVER_DTYPE).reshape(-1)

    def plan(
        self, obs: np.ndarray, info: Mapping[str, Any] | None = None, *, explore: bool = True
    ) -> torch.Tensor:
        """``[H, A]`` float64: the optimized plan from the current state (warm-started)."""
        slot = self.slots[explore]
        x0 = self._initial_state(obs, info)
        if slot.plan is None:
            h = self.cfg.horizon
            firsts = (h, h) if self.cfg.initial_horizon >= h else (h, self.cfg.initial_horizon)
            starts = [(p, h0) for p in self.cfg.initial_plans for h0 in dict.fromkeys(firsts)]
            res = min((self._cold_start(x0, p, h0) for p, h0 in starts), key=_final_cost)
        else:
            u = torch.cat([slot.plan[1:], slot.plan[-1:]])
            mu = slot.mu if self.cfg.warm_start_mu else None
            dmu = slot.dmu if self.cfg.warm_start_mu else None
            res = ilqg(self.problem, x0, u, self.low, self.high, self.options, mu=mu, dmu=dmu)
        # carry mu, but never above mu_init: failed steps at a converged plan raise it for nothing
        slot.plan, slot.mu, slot.dmu = res.controls, min(res.mu, self.cfg.mu_init), res.dmu
        self.last_result = res
        for k, v in (
            ("ilqg_iterations", float(res.iterations)),
            ("ilqg_plan_cost", res.costs[-1]),
            ("ilqg_improvement", res.costs[0] - res.costs[-1]),
            ("ilqg_mu", res.mu),
        ):
            if math.isfinite(v):  # a diverged model rollout (learned model) is not averaged in
                total, count = self._plan_sums.get(k, (0.0, 0))
                self._plan_sums[k] = (total + v, count + 1)
        return res.controls

    def _cold_start(self, x0: torch.Tensor, level: float, first: int) -> ILQGResult:
        """A first plan from the constant control ``level`` (box units), solved on horizons
        ``first, 2 first, ... horizon``, each warm-started from the previous solution extended by
        its last control (``first = horizon``: one solve)."""
        h, a = self.cfg.horizon, self.task.act_dim
        mid, half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low)
        u = (mid + level * half).expand(min(h, first), a).clone()
        res, mu, dmu = None, None, None
        while True:
            res = ilqg(self.problem, x0, u, self.low, self.high, self.first_options, mu=mu, dmu=dmu)
            if len(u) >= h:
                return res
            mu, dmu = min(res.mu, self.cfg.mu_init), res.dmu
            grow = min(len(u), h - len(u))
            u = torch.cat([res.controls, res.controls[-1:].expand(grow, a)])

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        if not self.ready or (explore and self._in_random_phase()):
            return self.random_action()
        u = self.plan(obs, info, explore=explore)[0]
        return np.clip(u.numpy(), self.task.act_low, self.task.act_high).astype(np.float32)

    def reset(self, *, explore: bool) -> None:
        self.slots[explore] = _Slot()

    def eval_metrics(self) -> Mapping[str, float]:
        """iLQG's statistics since the previous evaluation (a learned model's refits are logged
        by ``on_episode_end``, :class:`~algorithms.models.learned.LearnedModel`)."""
        out: dict[str, float] = {}
        out.update({k: total / count for k, (total, count) in self._plan_sums.items()})
        self._plan_sums = {}
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            **self._loop_state(),
            "plan_sums": dict(self._plan_sums),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._plan_sums = {k: (float(t), int(c)) for k, (t, c) in state["plan_sums"].items()}
        self._load_loop_state(state)
