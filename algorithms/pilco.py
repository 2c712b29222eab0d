"""``pilco``: Probabilistic Inference for Learning COntrol (Deisenroth & Rasmussen, "PILCO: A
Model-Based and Data-Efficient Approach to Policy Search", ICML 2011; equations from Deisenroth's
thesis, KIT 2010, and Deisenroth, Fox & Rasmussen, TPAMI 2015; defaults from the official code,
UCL-SML/pilco-matlab ``scenarios/cartPole/settings_cp.m``).

The loop (pilco-matlab ``cartPole_learn.m``): one trial with uniform random actions, then after
every training episode (:meth:`PILCO.on_episode_end`)

1. fit one GP per state dim (:class:`algorithms.models.gp.GPModel`) on all transitions so far:
   inputs ``[state (angles as sin/cos), action]``, targets the state change;
2. optimize the policy parameters by L-BFGS on the expected long-term cost
   ``J = sum_{t=1..H} E[c(x_t)]`` of the moment-matched rollout from ``p(x_0) = N(mu0, S0)``
   (pilco-matlab ``value.m`` / ``propagated.m``), gradients by autograd through every step::

       x_t ~ N(m, S)  --gTrig-->  [x, sin, cos]  --policy (RBF: gp2 moments)-->  u~
           --gSat squash to the action bounds-->  u  --GP (gp0 moments) on [dyn inputs, u]-->
           delta  -->  x_{t+1} = x_t + delta,   cost E[1 - exp(-|x - z|_W^2 / 2)] (lossSat)

   with every cross-covariance carried along (``cov[y, f(x)] = cov[y, x] V``);
3. act with the deterministic policy ``u = mid + half * sat(pi(x))`` (training and evaluation).

The cost is the task's (:class:`envs.spec.SaturatingCost`, ``TaskSpec.saturating_cost``, set in
the task's module): the cart-pole's on the pole tip's distance to the upright target, written as a
quadratic form in ``[x, sin th, cos th]`` (pilco-matlab ``loss_cp.m``), and the same for the
pendulum's tip, whose random resets need several start distributions. The cost also carries the
scenario's state map, model and policy inputs, horizon and ``p(x_0)``. :meth:`PILCO.check_task`
rejects tasks without one before a trial starts. Policies and their squashing:
:mod:`algorithms.models.policies`.

Deviations from the paper for our ``cartpole_swingup`` (dt 0.05 s, 200-step episodes, l = 0.6 m)
are in the docstrings of :class:`PILCOConfig` (``action_repeat``, ``horizon``, ``trial_steps``,
``gp_max_points``/``gp_sparse``). With these defaults 3 of 3 seeds swing up by trial 3-4
(returns per trial, seeds and commands: ``docs/algorithms/pilco.md``). Cost: one policy
optimization is ~187 rollouts forward + backward, each ``horizon`` steps of ``O(E^2 n^2 D)``
moment matching (``benchmark/perf/pilco.py``; measured rounds in ``docs/performance.md``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    ConfigError,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Range,
    RunContext,
    Transition,
)
from algorithms.models.gp import GP_DTYPE, GPModel, augment_points
from algorithms.models.policies import (
    MomentFn,
    MomentMatchedRollout,
    init_policy,
    optimize_policy,
    squash,
)
from algorithms.replay.sequence import SequenceReplay
from envs import TASKS as TASK_REGISTRY
from envs.spec import SaturatingCost, TaskSpec

Tensor = torch.Tensor


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class PILCOConfig(AlgoConfig):
    """PILCO. Sources: pilco-matlab ``scenarios/cartPole/settings_cp.m`` (``dt``, ``T``, ``S0``,
    ``opt.length``, ``trainOpt``, ``cost.width``, policy init), ``gp/train.m`` (GP init and
    curbs), the ICML 2011 paper (RBF network size, one random trial). Horizons and trial lengths
    are in control steps of ``action_repeat`` env steps."""

    renamed: ClassVar[Mapping[str, str]] = {"random_trials": "initial_random_episodes"}

    action_repeat: PositiveInt = 2
    """Env steps each action is held (zero-order hold). 2 x 0.05 s = PILCO's ``dt = 0.1`` s
    (settings_cp ``dt = 0.10``): the GP then models 0.1 s transitions and a horizon needs half
    the moment-matching steps of planning at the env's 0.05 s."""
    horizon: PositiveInt | None = None
    """Prediction/optimization horizon ``H`` in control steps. ``None``: the task's
    (``SaturatingCost.horizon``): the cart-pole's 40 (4 s at dt 0.1, pilco-matlab settings_cp ``T = 4``; the
    paper: 2.5 s), the pendulum's 30. Measured on the cart-pole: at 30 (3 s) seed 1 stalled at
    an evaluation return of ~121 for trials 5-11 (2 of 5 starts failing to swing up), at 40 it
    scores 184 after trial 3."""
    trial_steps: PositiveInt | None = None
    """Env steps of each training episode used as GP data (from its start). ``None``: the
    optimization horizon, ``horizon * action_repeat`` (PILCO's trials last ``T``, its horizon:
    40 pairs per trial on the cart-pole). The rest of our 200-step episode is run by the driver
    but not learned from: it would add 60 more pairs per trial, mostly near the same upright
    state, and the moment matching costs O(n^2) per step (not measured against learning from all
    200 steps; with this cut the swing-up is learned in 3-4 trials, see the module docstring)."""
    initial_random_episodes: PositiveInt = 1
    """Trials (training episodes) with uniform random actions (each held ``action_repeat``
    steps) before the first fit. pilco-matlab ``J = 1``. Counted in episodes, not steps: PILCO
    learns per trial (the step-based plugins' ``initial_random_steps``)."""
    policy: Literal["rbf", "linear"] = "rbf"
    """``"rbf"``: pilco-matlab's ``congp``, a GP-mean (regularized RBF network) policy with
    trainable centres, targets and length-scales (signal 1, noise 0.01 fixed); ``"linear"``:
    ``conlin``, ``u~ = W x + b``."""
    num_basis: PositiveInt = 50
    """RBF basis functions. 50 for the cart-pole in the PILCO paper (settings_cp ships 10)."""
    squash: Literal["sat", "sin"] = "sat"
    """Squash of the policy output into the action box: ``"sat"``: ``(9 sin x + sin 3x) / 8``
    (pilco-matlab ``gSat``, used by settings_cp); ``"sin"``: ``sin x`` (``gSin``)."""
    policy_optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    """Policy optimizer: L-BFGS with strong-Wolfe line search (pilco-matlab ``minimize``, BFGS)
    or Adam."""
    policy_iterations: PositiveInt = 150
    """L-BFGS iterations (or Adam steps) per policy optimization. settings_cp ``opt.length = 150``
    line searches."""
    policy_lr: PositiveFloat = 0.01
    """Adam's learning rate (``policy_optimizer="adam"`` only; no paper default)."""
    gp_iterations: PositiveInt = 300
    """L-BFGS iterations per GP hyperparameter fit. ``trainOpt(1) = 300`` line searches."""
    gp_max_points: Annotated[int, Range(ge=10)] | None = 300
    """Above this many GP training pairs, use the sparse approximation ``gp_sparse`` with this
    many points (drawn by the trial's seeded generator); ``None``: always the full GP.
    pilco-matlab settings_cp: ``dynmodel.induce = zeros(300, 0, 1)``, FITC with 300 inducing
    inputs once there are more than 300 pairs."""
    gp_sparse: Literal["fitc", "sod"] = "fitc"
    """``"fitc"``: FITC on all pairs with the drawn inducing inputs (pilco-matlab ``gp1d``; they
    are not optimized here); ``"sod"``: the full GP on the drawn subset only. See
    :mod:`algorithms.models.gp`."""
    cost_width: PositiveFloat | None = None
    """Width ``a`` of the saturating cost ``1 - exp(-d^2 / (2 a^2))``. ``None``: the task's
    (cart-pole 0.25, pendulum 0.5: settings files)."""
    init_std: NonNegativeFloat | tuple[NonNegativeFloat, ...] | None = None
    """Std of the Gaussian initial state distribution (of each start distribution), one value
    per state dim or one for all. ``None``: the task's (cart-pole 0.1 for each of the 4 dims, its
    env's reset and settings_cp's ``S0``; pendulum ``(pi / 8, sqrt(1/3))``)."""


# --------------------------------------------------------------------------- the plugin
class PILCO(Algorithm):
    """PILCO with a GP dynamics model and analytic moment matching; see the module docstring."""

    name = "pilco"
    Config = PILCOConfig
    requires = frozenset({Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        super().check_task(task, config)
        assert isinstance(config, PILCOConfig)
        if task.saturating_cost is None:
            have = sorted(n for n in TASK_REGISTRY if TASK_REGISTRY[n].saturating_cost is not None)
            raise ConfigError(
                f"pilco needs the task's saturating cost (TaskEntry.saturating_cost, an "
                f"envs.spec.SaturatingCost) and task {task.name!r} has none; tasks with one: "
                f"{', '.join(have)}. Pick one of those, or give the task a SaturatingCost."
            )
        for key in ("action_repeat", "horizon", "policy_iterations", "num_basis"):
            if getattr(config, key) is not None and getattr(config, key) < 1:
                raise ConfigError(f"pilco: {key} must be >= 1, got {getattr(config, key)}")
        if config.trial_steps is not None and config.trial_steps < config.action_repeat:
            raise ConfigError(
                f"pilco: trial_steps ({config.trial_steps}) must cover at least one control step "
                f"(action_repeat = {config.action_repeat})"
            )
        if config.gp_max_points is not None and config.gp_max_points < 10:
            raise ConfigError("pilco: gp_max_points must be >= 10 (or None for no cap)")
        if config.initial_random_episodes < 1:
            raise ConfigError(
                "pilco: initial_random_episodes must be >= 1 (the first GP needs data)"
            )

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """The task's values (``task.saturating_cost``) for the fields left ``None``."""
        assert isinstance(config, PILCOConfig)
        st = _cost(task)
        horizon = st.horizon if config.horizon is None else config.horizon
        cov = st.init_cov
        assert all(cov[i][j] == 0.0 for i in range(len(cov)) for j in range(len(cov)) if i != j)
        return dataclasses.replace(
            config,
            horizon=horizon,
            trial_steps=(
                horizon * config.action_repeat if config.trial_steps is None else config.trial_steps
            ),
            cost_width=st.width if config.cost_width is None else config.cost_width,
            init_std=(
                tuple(math.sqrt(cov[i][i]) for i in range(len(cov)))
                if config.init_std is None
                else config.init_std
            ),
        )

    def __init__(self, task: TaskSpec, config: PILCOConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        self.cfg = config
        self.setup = _cost(task)
        st = self.setup
        self.obs_dim = task.obs_dim
        self.state_dim = len(st.init_cov)
        self.act_dim = task.act_dim
        low = torch.as_tensor(task.act_low, dtype=GP_DTYPE)
        high = torch.as_tensor(task.act_high, dtype=GP_DTYPE)
        self.act_mid, self.act_half = (high + low) / 2.0, (high - low) / 2.0
        width = config.cost_width if config.cost_width is not None else st.width
        weight = torch.tensor(st.weight, dtype=GP_DTYPE) / width**2
        self.start_means = torch.tensor(st.start_means or (st.init_mean,), dtype=GP_DTYPE)
        """``[K, S]``: the start means of the rollouts ``J`` averages over."""
        if config.init_std is None:
            self.s0 = torch.tensor(st.init_cov, dtype=GP_DTYPE)
        elif isinstance(config.init_std, tuple):  # the resolved task value gives S0 exactly
            self.s0 = torch.diag(torch.tensor(config.init_std, dtype=GP_DTYPE) ** 2)
        else:
            self.s0 = config.init_std**2 * torch.eye(self.state_dim, dtype=GP_DTYPE)
        self.horizon = st.horizon if config.horizon is None else config.horizon
        self.trial_steps = (
            self.horizon * config.action_repeat
            if config.trial_steps is None
            else config.trial_steps
        )
        self.gp = GPModel()
        self.rollout = MomentMatchedRollout(
            self.gp,
            st,
            weight,
            self.s0,
            self.start_means,
            self.act_mid,
            self.act_half,
            config.squash,
        )
        self.policy = init_policy(
            config.policy,
            st,
            self.act_dim,
            config.num_basis,
            self.s0,
            self.start_means,
            ctx.torch_gen,
            one_start=not st.start_means,
        )
        self.trials = 0
        self.optimized = False
        self.cost_trace: list[float] = []
        """``J`` at every evaluation of the last policy optimization (diagnostics)."""
        self.replay = SequenceReplay.for_trial(
            1_000_000, task.obs_dim, task.act_dim, ctx, obs_dtype=np.float64, act_dtype=np.float64
        )
        """Every real training step with its episode (PILCO keeps all data)."""
        self._held: dict[bool, tuple[int, np.ndarray | None]] = {True: (0, None), False: (0, None)}

    # ------------------------------------------------------------------ policy
    def _augment_points(self, x: np.ndarray) -> np.ndarray:
        """``[N, O] -> [N, aug]`` at deterministic states."""
        return augment_points(x, self.setup.angle_dims)

    def states(self, obs: np.ndarray) -> np.ndarray:
        """``[N, O] -> [N, S]``: the PILCO states of observations (``SaturatingCost.obs_to_state``)."""
        fn = self.setup.obs_to_state
        return obs if fn is None else fn(obs)

    @torch.no_grad()
    def policy_action(self, obs: np.ndarray) -> np.ndarray:
        """``[O] -> [A]``: the deterministic squashed policy at an observation."""
        state = self.states(np.asarray(obs, np.float64).reshape(1, -1))
        aug = self._augment_points(state)[0]
        x = torch.as_tensor(aug[list(self.setup.policy_inputs)], dtype=GP_DTYPE)
        u = squash(self.policy(x), self.cfg.squash, self.act_mid, self.act_half)
        return u.numpy().astype(np.float32)

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        count, held = self._held[explore]
        if held is None or count % self.cfg.action_repeat == 0:
            if explore and self.trials < self.cfg.initial_random_episodes:
                held = self.random_action()
            else:
                held = self.policy_action(obs)
        self._held[explore] = (count + 1, held)
        return held

    def reset(self, *, explore: bool) -> None:
        self._held[explore] = (0, None)

    # ------------------------------------------------------------------ moment-matched rollout
    def propagate(
        self, m: Tensor, s: Tensor, policy: MomentFn | None = None
    ) -> tuple[Tensor, Tensor]:
        """One control step of ``x ~ N(m [S], s [S, S])`` (pilco-matlab ``propagated.m``).
        ``policy``: the policy's ``moment_fn()`` (made here when not given)."""
        mm, ss = self.rollout.augment(m, s)
        return self.rollout.step(m, s, mm, ss, policy or self.policy.moment_fn())

    def cost(self, m: Tensor, s: Tensor) -> Tensor:
        """Expected saturating cost of ``N(m, s)`` (pilco-matlab ``loss_cp``)."""
        return self.rollout.cost(m, s)

    def expected_costs(self, horizon: int | None = None) -> Tensor:
        """``[H]``: ``E[c(x_t)]``, ``t = 1..H``, of the current policy's moment-matched rollout
        from ``p(x_0)`` (:meth:`MomentMatchedRollout.expected_costs`)."""
        return self.rollout.expected_costs(self.policy.moment_fn(), horizon or self.horizon)

    # ------------------------------------------------------------------ learning
    def observe(self, transition: Transition) -> None:
        self.replay.add(transition)

    def control_steps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every finished episode's first ``trial_steps`` env steps cut into control steps of
        ``action_repeat`` env steps: states ``x [n, S]``, actions ``u [n, A]`` (the held
        action), states one control step later ``y [n, S]``."""
        k, xs, us, ys = self.cfg.action_repeat, [], [], []
        for ep in self.replay.episodes():
            if not (ep.terminated[-1] or ep.truncated[-1]):
                continue  # the running episode joins at its end
            n = min(len(ep.obs), self.trial_steps)
            starts = np.arange(0, n - k + 1, k)
            if len(starts):
                xs.append(self.states(ep.obs[starts]))
                us.append(ep.act[starts])
                ys.append(self.states(ep.next_obs[starts + k - 1]))
        if not xs:
            return np.zeros((0, 0)), np.zeros((0, self.task.act_dim)), np.zeros((0, 0))
        return np.concatenate(xs), np.concatenate(us), np.concatenate(ys)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """GP inputs ``[n, len(dyn_inputs) + A]`` and targets ``[n, S]`` (state changes, those of
        :attr:`SaturatingCost.wrap_dims` wrapped to ``[-pi, pi)``)."""
        x, u, y = self.control_steps()
        inputs = np.concatenate([self._augment_points(x)[:, list(self.setup.dyn_inputs)], u], 1)
        delta = y - x
        for i in self.setup.wrap_dims:
            delta[:, i] = (delta[:, i] + math.pi) % (2.0 * math.pi) - math.pi
        return inputs, delta

    def fit_model(self) -> dict[str, float]:
        t0 = time.perf_counter()
        inputs, targets = self.training_data()
        fit = self.gp.fit(
            inputs,
            targets,
            iterations=self.cfg.gp_iterations,
            max_points=self.cfg.gp_max_points,
            sparse=self.cfg.gp_sparse,
            rng=self.ctx.np_rng,
        )
        return {
            "gp_nlml": fit.nlml,
            "gp_points": float(fit.points),
            "gp_basis": float(fit.basis),
            "gp_fit_s": time.perf_counter() - t0,
        }

    def optimize_policy(self) -> dict[str, float]:
        """L-BFGS (or Adam) on ``J`` over the policy parameters, kept at the best ``J`` seen."""
        t0 = time.perf_counter()
        search = optimize_policy(
            self.policy.parameters(),
            lambda: self.expected_costs().sum(),
            optimizer=self.cfg.policy_optimizer,
            iterations=self.cfg.policy_iterations,
            lr=self.cfg.policy_lr,
        )
        self.cost_trace = search.trace
        return {
            "expected_cost_before": search.cost_before,
            "expected_cost": search.cost,
            "policy_evals": float(search.evaluations),
            "policy_opt_s": time.perf_counter() - t0,
        }

    def on_episode_end(self) -> Mapping[str, float]:
        self.trials += 1
        if self.trials < self.cfg.initial_random_episodes or not len(self.control_steps()[0]):
            return {}
        metrics = self.fit_model()
        metrics.update(self.optimize_policy())
        self.optimized = True
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "optimized": self.optimized,
            "replay": self.replay.state_dict(),
            "held": dict(self._held),
            "gp": self.gp.state_dict(),
            "policy": [p.detach().clone() for p in self.policy.parameters()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trials = int(state["trials"])
        self.optimized = bool(state["optimized"])
        self.replay.load_state_dict(state["replay"])
        self._held = dict(state["held"])
        self.gp.load_state_dict(state["gp"])
        with torch.no_grad():
            for p, v in zip(self.policy.parameters(), state["policy"], strict=True):
                p.copy_(v)


def _cost(task: TaskSpec) -> SaturatingCost:
    """The task's :class:`SaturatingCost` (:meth:`PILCO.check_task` has checked there is one)."""
    if task.saturating_cost is None:
        raise ConfigError(f"pilco: task {task.name!r} has no saturating cost (see check_task)")
    return task.saturating_cost
