"""iLQG: iterative linear-quadratic trajectory optimization with control limits, and the three
derivative providers the ``ilqg`` plugin plans with.

The solver follows Tassa, Erez & Todorov 2012 ("Synthesis and stabilization of complex behaviors
through online trajectory optimization", IROS) on top of Li & Todorov 2004 ("Iterative linear
quadratic regulator design for nonlinear biological movement systems", ICINCO), with the control
limits of Tassa, Mansard & Todorov 2014 ("Control-limited differential dynamic programming", ICRA).
Constants and control flow are those of Tassa's reference code ``iLQG.m`` / ``boxQP.m`` (MathWorks
File Exchange 52069, the code of the 2014 paper), noted below where they matter.

Problem: minimise ``J(U) = sum_t l(x_t, u_t) + l_f(x_H)`` over ``U = u_0 .. u_{H-1}`` in the box
``[low, high]``, subject to ``x_{t+1} = f(x_t, u_t)`` from a given ``x_0``. One iteration:

1. *derivatives* along the current trajectory: ``f_x, f_u`` and ``l_x, l_u, l_xx, l_uu, l_ux``
   (iLQG drops the second derivatives of ``f``: Li & Todorov 2004);
2. *backward pass* (the Riccati-like recursion of Tassa 2012): ``Q`` terms with the
   Levenberg-Marquardt regularization of the cost-to-go Hessian, ``V_xx + mu I`` (Tassa 2012's
   state-space regularization, ``regType = 2`` in ``iLQG.m``; ``regularization="control"`` is
   ``regType = 1``, ``Q_uu + mu I``); the open-loop step ``k`` and gain ``K`` from the box-QP
   ``min_k 0.5 k'Q_uu k + k'Q_u`` with ``low <= u + k <= high`` solved by projected Newton
   (:func:`box_qp`, Tassa 2014, ``boxQP.m``) and ``K`` zero on the clamped controls (Tassa
   2014); ``control_limits="clamp"`` solves the unconstrained step instead and only clamps in the
   forward pass (the naive clamping Tassa 2014 compare against). The cost-to-go update uses the
   *unregularized* ``Q`` terms;
3. *forward pass* ``u = clamp(u_bar + alpha k + K (x - x_bar))`` for ``alpha`` in
   ``10 ** linspace(0, -3, 11)`` (``iLQG.m``'s ``Alpha``), accepted when the actual-to-expected
   reduction ratio ``z = (J - J_new) / (-alpha (dV_1 + alpha dV_2))`` is positive (``zMin = 0``).
   ``line_search="parallel"`` rolls all step sizes out at once and keeps the best (``iLQG.m``'s
   default, cheap for batched torch models); ``"serial"`` backtracks (for the simulator);
4. the ``mu`` schedule of Tassa 2012 (``iLQG.m``: ``mu_min = 1e-6``, factor 1.6): on a
   non-positive-definite ``Q_uu`` or a failed line search ``dmu = max(dmu * 1.6, 1.6)``,
   ``mu = max(mu * dmu, mu_min)``; on an accepted step ``dmu = min(dmu / 1.6, 1 / 1.6)``,
   ``mu = mu * dmu`` (set to 0 below ``mu_min``). Stop when ``mu > mu_max``, when the relative
   improvement falls below ``tol_rel``, when ``iLQG.m``'s gradient criterion holds, or after
   ``max_iterations``.

Derivative providers (all implement :class:`Problem`):

- :class:`AutogradProblem` (a): a task's differentiable torch ``dynamics`` and ``reward_fn``; the
  step cost is ``l(x, u) = -reward(x, u, f(x, u))``. Every derivative of the whole horizon comes
  from one ``torch.func.vmap`` call: ``vmap(jacrev(jacrev(l)))`` (``cost_hessian="exact"``) or,
  with ``cost_hessian="gauss_newton"``, ``vmap(jacrev(f))`` and ``vmap(jacrev(jacrev(r)))`` of the
  reward in ``(x, u, x')`` chained through ``[I; f_z]``: the Hessian without ``f``'s curvature,
  i.e. iLQG's own approximation applied to rewards that read the next state.
- :class:`EnsembleProblem` (c): the same on a learned :class:`ProbabilisticEnsemble`'s mean
  prediction (``mode="mean"``, ``sample=False``: the elites' mean), float32 network, float64
  solver. Its step Jacobian is one reverse pass over the horizon replicated ``n`` times (exact for
  a row-wise network, and ~30x faster than ``vmap(jacrev)`` through the ensemble's batched
  matmuls); the reward's derivatives are ``torch.func`` as in (a).
- :class:`MujocoProblem` (b): the MuJoCo simulator of a ``Capability.SIMULATOR`` task. States are
  ``mjSTATE_FULLPHYSICS`` vectors (plus the task's "stage" values, see :mod:`envs.simulate`);
  ``f_x, f_u`` live in MuJoCo's tangent space ``(dqpos [nv], dqvel [nv], dact [na])``. They come
  from ``mujoco.mjd_transitionFD`` chained over the env step's ``frame_skip`` physics steps when
  the model's integrator allows it; MuJoCo refuses ``mjd_transitionFD`` on RK4 models (every
  SIMULATOR task but HalfCheetah), where they are central differences of the whole env step in
  the same tangent coordinates, all ``2 (n + m)`` perturbations of all ``H`` steps in one batched
  ``mujoco.rollout`` call. The cost ``-reward(obs(x), u, obs(x'))`` is quadratized in two parts
  chained exactly: the torch ``reward_fn`` by autograd in ``(obs, u, obs')`` (one ``vmap`` call),
  and the task's own numpy ``StateObservation`` by central first and second differences in the
  tangent coordinates (one vectorized evaluation of a fixed stencil for all states); the result
  is then chained through ``[I; f_x f_u]`` as above. Differences of the observation map rather
  than a torch port of it: they work unchanged for every SIMULATOR task and cannot drift from the
  observation the env reports (the contract tests check ``StateObservation`` against it); autograd
  rather than differences of the reward: rewards with step functions (InvertedDoublePendulum's
  alive bonus) would show differences of 10 / eps there. Stage
  values (quantities MuJoCo derives inside ``mj_step``) are held at their nominal values: exact for
  InvertedDoublePendulum, whose reward does not read its stage value.

Shapes: ``H`` horizon, ``S`` stored state size, ``n`` tangent state size (rows of ``f_x``; ``S``
for torch models), ``m`` action size, ``B`` trajectories rolled out at once. All solver math is
float64 torch on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple, Protocol

import numpy as np
import torch
from torch.func import jacrev, vmap

from algorithms.api import NonNegativeFloat, NonNegativeInt, PositiveFloat, Range
from envs.simulate import SimulatorLayout
from envs.spec import TaskSpec

if TYPE_CHECKING:
    from algorithms.models.ensemble import ProbabilisticEnsemble

Tensor = torch.Tensor
DTYPE = torch.float64
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]

#: ``iLQG.m``'s backtracking coefficients ``Alpha = 10 .^ linspace(0, -3, 11)``.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(0.0, -3.0, 11))


# ------------------------------------------------------------------------------------------------
# problem interface


class Derivatives(NamedTuple):
    """First and second derivatives along a trajectory (``t = H``: the final cost)."""

    fx: Tensor
    """``[H, n, n]``."""
    fu: Tensor
    """``[H, n, m]``."""
    cx: Tensor
    """``[H + 1, n]``."""
    cu: Tensor
    """``[H, m]``."""
    cxx: Tensor
    """``[H + 1, n, n]``."""
    cuu: Tensor
    """``[H, m, m]``."""
    cux: Tensor
    """``[H, m, n]``."""


class Problem(Protocol):
    """A finite-horizon problem: dynamics, costs and their derivatives along a trajectory."""

    state_dim: int
    """``n``: the tangent dimension (rows of ``f_x``)."""
    act_dim: int
    """``m``."""
    batched: bool
    """Whether :meth:`step` on ``B`` rows costs about as much as on one (then the line search
    tries every step size in one rollout)."""

    def step(self, x: Tensor, u: Tensor) -> Tensor:
        """``[B, S], [B, m] -> [B, S]``: the next states."""
        ...

    def cost(self, xs: Tensor, us: Tensor) -> Tensor:
        """``[B, H + 1, S], [B, H, m] -> [B, H + 1]``: step costs, the final cost last."""
        ...

    def difference(self, x: Tensor, ref: Tensor) -> Tensor:
        """``[B, S], [B, S] -> [B, n]``: ``x - ref`` in tangent coordinates."""
        ...

    def derivatives(self, xs: Tensor, us: Tensor) -> Derivatives:
        """Along ``xs [H + 1, S]``, ``us [H, m]``."""
        ...


# ------------------------------------------------------------------------------------------------
# box-constrained QP (Tassa, Mansard & Todorov 2014; boxQP.m)


class BoxQPResult(NamedTuple):
    x: Tensor
    """``[m]`` the minimiser."""
    result: int
    """``boxQP.m``'s code: -1 Hessian not PD, 0 no descent direction, 1 max iterations, 2 line
    search failed, 4 small improvement, 5 small gradient, 6 all dims clamped (>= 1: usable)."""
    chol_free: Tensor
    """``[f, f]`` lower Cholesky factor of ``H`` restricted to the free dims."""
    free: Tensor
    """``[m]`` bool: the dims not clamped at a bound."""


def box_qp(
    hess: Tensor,
    grad: Tensor,
    lower: Tensor,
    upper: Tensor,
    x0: Tensor | None = None,
    *,
    max_iter: int = 100,
    min_grad: float = 1e-8,
    min_rel_improve: float = 1e-8,
    step_dec: float = 0.6,
    min_step: float = 1e-22,
    armijo: float = 0.1,
) -> BoxQPResult:
    """Minimise ``0.5 x'Hx + x'g`` subject to ``lower <= x <= upper`` by projected Newton.

    ``hess [m, m]``, ``grad [m]``, bounds ``[m]`` (``+-inf`` allowed), warm start ``x0 [m]``.
    Each iteration fixes the dims clamped at a bound with the gradient pushing outwards, takes the
    Newton step on the free dims and backtracks (Armijo) along its projection onto the box.
    Defaults are ``boxQP.m``'s.
    """
    m = hess.shape[0]
    if m == 1:  # one control: the projected Newton iterations end at clamp(-g / h) (no loop)
        h = float(hess[0, 0])
        if not h > 0.0:
            return BoxQPResult(hess.new_zeros(1), -1, hess.new_zeros(0, 0), hess.new_ones(1) > 0)
        newton = -float(grad[0]) / h
        x1 = min(max(newton, float(lower[0])), float(upper[0]))
        free = torch.tensor([x1 == newton])
        chol = torch.tensor([[math.sqrt(h)]], dtype=hess.dtype)
        return BoxQPResult(hess.new_tensor([x1]), 5 if bool(free) else 6, chol, free)
    if x0 is not None:
        x = torch.minimum(torch.maximum(x0, lower), upper)
    else:
        lo = torch.where(torch.isfinite(lower), lower, torch.nan)
        hi = torch.where(torch.isfinite(upper), upper, torch.nan)
        x = torch.stack([lo, hi]).nanmean(0)
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    clamped = torch.zeros(m, dtype=torch.bool)
    free = ~clamped
    chol = torch.zeros(m, m, dtype=hess.dtype)
    value = float(x @ grad + 0.5 * x @ hess @ x)
    old_value = 0.0
    result = 0
    it = 0
    for it in range(1, max_iter + 1):
        if it > 1 and (old_value - value) < min_rel_improve * abs(old_value):
            result = 4
            break
        old_value = value
        g = grad + hess @ x
        old_clamped = clamped
        clamped = ((x == lower) & (g > 0)) | ((x == upper) & (g < 0))
        free = ~clamped
        if bool(clamped.all()):
            result = 6
            break
        if it == 1 or bool((old_clamped != clamped).any()):
            chol, info = torch.linalg.cholesky_ex(hess[free][:, free])
            if int(info) != 0:
                result = -1
                break
        if float(torch.linalg.vector_norm(g[free])) < min_grad:
            result = 5
            break
        g_clamped = grad + hess @ (x * clamped)
        search = torch.zeros_like(x)
        search[free] = (
            -torch.cholesky_solve(g_clamped[free].unsqueeze(-1), chol).squeeze(-1) - x[free]
        )
        sdotg = float(search @ g)
        if sdotg >= 0:  # no descent direction (should not happen): result 0
            break
        step = 1.0
        xc = torch.minimum(torch.maximum(x + step * search, lower), upper)
        vc = float(xc @ grad + 0.5 * xc @ hess @ xc)
        while (vc - old_value) / (step * sdotg) < armijo:
            step *= step_dec
            xc = torch.minimum(torch.maximum(x + step * search, lower), upper)
            vc = float(xc @ grad + 0.5 * xc @ hess @ xc)
            if step < min_step:
                result = 2
                break
        x, value = xc, vc
        if result:
            break
    else:
        result = 1
    if it >= max_iter and result == 0:
        result = 1
    return BoxQPResult(x, result, chol, free)


# ------------------------------------------------------------------------------------------------
# the solver


@dataclass(frozen=True)
class ILQGOptions:
    """Solver settings (defaults: Tassa's ``iLQG.m`` unless noted)."""

    max_iterations: NonNegativeInt = 100
    """Outer iterations (``iLQG.m``: 500 offline; the MPC plugin uses a few)."""
    mu_init: NonNegativeFloat = 1.0
    """Initial ``mu`` (``iLQG.m`` ``lambda = 1``)."""
    dmu_init: PositiveFloat = 1.0
    """Initial ``dmu`` (``iLQG.m`` ``dlambda = 1``)."""
    mu_factor: Annotated[float, Range(gt=1)] = 1.6
    """``iLQG.m`` ``lambdaFactor``."""
    mu_min: PositiveFloat = 1e-6
    """Below this ``mu`` is set to 0 (Tassa 2012; ``iLQG.m`` ``lambdaMin``)."""
    mu_max: PositiveFloat = 1e10
    """Give up above this (``iLQG.m`` ``lambdaMax``)."""
    regularization: Literal["state", "control"] = "state"
    """``"state"``: ``V_xx + mu I`` (Tassa 2012, ``regType = 2``); ``"control"``:
    ``Q_uu + mu I`` (``regType = 1``, ``iLQG.m``'s default)."""
    control_limits: Literal["boxqp", "clamp"] = "boxqp"
    """``"boxqp"``: Tassa 2014's box-QP backward pass; ``"clamp"``: unconstrained backward pass,
    controls clamped in the forward pass only."""
    alphas: tuple[PositiveFloat, ...] = DEFAULT_ALPHAS
    """Line-search step sizes, largest first."""
    line_search: Literal["parallel", "serial"] = "parallel"
    """``"parallel"``: every step size at once, keep the best (``iLQG.m`` ``parallel = true``);
    ``"serial"``: the first accepted one."""
    z_min: NonNegativeFloat = 0.0
    """Minimum accepted actual/expected reduction ratio (``iLQG.m`` ``zMin``)."""
    tol_rel: NonNegativeFloat = 1e-6
    """Stop once an accepted step improves ``J`` by less than ``tol_rel * |J|`` (``iLQG.m`` uses
    an absolute ``tolFun = 1e-7``; a relative one does not depend on the reward's scale)."""
    tol_grad: NonNegativeFloat = 1e-4
    """Stop when ``mean_t max_i |k_ti| / (|u_ti| + 1) < tol_grad`` and ``mu < 1e-5``
    (``iLQG.m`` ``tolGrad``)."""

    def __post_init__(self) -> None:
        if self.max_iterations < 0:
            raise ValueError(f"max_iterations must be >= 0, got {self.max_iterations}")
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ValueError(f"alphas must be positive step sizes, got {self.alphas}")
        if self.mu_factor <= 1.0:
            raise ValueError(f"mu_factor must be > 1, got {self.mu_factor}")


class ILQGResult(NamedTuple):
    states: Tensor
    """``[H + 1, S]`` the final trajectory."""
    controls: Tensor
    """``[H, m]`` the plan."""
    gains: Tensor
    """``[H, m, n]`` feedback gains ``K`` of the last backward pass (``u = u_bar + K dx``)."""
    feedforward: Tensor
    """``[H, m]`` open-loop steps ``k`` of the last backward pass."""
    costs: list[float]
    """Total cost of the initial rollout and after every accepted iteration (decreasing)."""
    mu: float
    """Final regularization (warm-starts the next MPC step)."""
    dmu: float
    iterations: int
    """Outer iterations run."""
    stop: str
    """Why it stopped: ``"max_iterations"``, ``"tol_rel"``, ``"tol_grad"``, ``"mu_max"``, or
    ``"diverged"`` (the initial rollout's cost is not finite; the plan is returned unchanged)."""


@torch.no_grad()
def rollout(
    problem: Problem,
    x0: Tensor,
    us: Tensor,
    low: Tensor,
    high: Tensor,
    *,
    xs_ref: Tensor | None = None,
    k: Tensor | None = None,
    gains: Tensor | None = None,
    alphas: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Forward pass: ``B`` closed-loop rollouts from ``x0 [S]``.

    ``u_t = clamp(us_t + alpha k_t + K_t (x_t - xs_ref_t), low, high)`` for each ``alpha`` in
    ``alphas [B]`` (``B = 1`` and plain ``us [H, m]`` without ``k``/``gains``). Returns
    ``xs [B, H + 1, S]``, ``us [B, H, m]``, ``costs [B, H + 1]``.
    """
    h = us.shape[0]
    b = 1 if alphas is None else alphas.shape[0]
    x = x0.reshape(1, -1).expand(b, -1).clone()
    xs = x.new_empty(b, h + 1, x.shape[1])
    u_out = us.new_empty(b, h, us.shape[1])
    xs[:, 0] = x
    for t in range(h):
        u = us[t].expand(b, -1)
        if k is not None and alphas is not None:
            u = u + alphas[:, None] * k[t]
        if gains is not None and xs_ref is not None:
            dx = problem.difference(x, xs_ref[t].expand(b, -1))
            u = u + dx @ gains[t].T
        u = torch.minimum(torch.maximum(u, low), high)
        u_out[:, t] = u
        x = problem.step(x, u)
        xs[:, t + 1] = x
    return xs, u_out, problem.cost(xs, u_out)


class _Backward(NamedTuple):
    k: Tensor
    gains: Tensor
    dv: tuple[float, float]


def backward_pass(
    d: Derivatives, us: Tensor, low: Tensor, high: Tensor, mu: float, options: ILQGOptions
) -> _Backward | None:
    """The backward pass (Tassa 2012; box-QP steps and clamped-row gains of Tassa 2014).

    ``None`` when the regularized ``Q_uu`` is not positive definite at some step."""
    h, m = us.shape
    n = d.fx.shape[-1]
    state_reg = options.regularization == "state"
    box = options.control_limits == "boxqp"
    eye_m = torch.eye(m, dtype=DTYPE)
    k = us.new_zeros(h, m)
    gains = us.new_zeros(h, m, n)
    vx, vxx = d.cx[h], d.cxx[h]
    dv1 = dv2 = 0.0
    for t in range(h - 1, -1, -1):
        fx, fu = d.fx[t], d.fu[t]
        fu_vxx = fu.T @ vxx
        qx = d.cx[t] + fx.T @ vx
        qu = d.cu[t] + fu.T @ vx
        qxx = d.cxx[t] + fx.T @ vxx @ fx
        qux = d.cux[t] + fu_vxx @ fx
        quu = d.cuu[t] + fu_vxx @ fu
        if state_reg:
            fu_vxx_reg = fu_vxx + mu * fu.T
            qux_reg = d.cux[t] + fu_vxx_reg @ fx
            quu_reg = d.cuu[t] + fu_vxx_reg @ fu
        else:
            qux_reg = qux
            quu_reg = quu + mu * eye_m
        quu_reg = 0.5 * (quu_reg + quu_reg.T)
        if box:
            qp = box_qp(quu_reg, qu, low - us[t], high - us[t], k[min(t + 1, h - 1)])
            if qp.result < 1:
                return None
            k_t = qp.x
            gain_t = us.new_zeros(m, n)
            if bool(qp.free.any()):
                gain_t[qp.free] = -torch.cholesky_solve(qux_reg[qp.free], qp.chol_free)
        else:
            chol, info = torch.linalg.cholesky_ex(quu_reg)
            if int(info) != 0:
                return None
            sol = -torch.cholesky_solve(torch.cat([qu[:, None], qux_reg], 1), chol)
            k_t, gain_t = sol[:, 0], sol[:, 1:]
        dv1 += float(k_t @ qu)
        dv2 += float(0.5 * k_t @ quu @ k_t)
        kt_quu = gain_t.T @ quu
        vx = qx + kt_quu @ k_t + gain_t.T @ qu + qux.T @ k_t
        vxx = qxx + kt_quu @ gain_t + gain_t.T @ qux + qux.T @ gain_t
        vxx = 0.5 * (vxx + vxx.T)
        k[t], gains[t] = k_t, gain_t
    return _Backward(k, gains, (dv1, dv2))


def _sign(v: float) -> float:
    """MATLAB's ``sign`` (0 at 0): a zero improvement is not accepted."""
    return float(v > 0) - float(v < 0)


def ilqg(
    problem: Problem,
    x0: Tensor,
    u_init: Tensor,
    low: Tensor,
    high: Tensor,
    options: ILQGOptions | None = None,
    *,
    mu: float | None = None,
    dmu: float | None = None,
) -> ILQGResult:
    """Optimise the controls ``[H, m]`` from ``u_init`` (clamped into ``[low, high]``, ``[m]``)
    for the trajectory from ``x0 [S]``. ``mu``/``dmu`` override ``options.mu_init``/``dmu_init``
    (MPC warm starts pass the previous step's). See the module docstring for the algorithm."""
    opt = options or ILQGOptions()
    mu = opt.mu_init if mu is None else float(mu)
    dmu = opt.dmu_init if dmu is None else float(dmu)
    low = torch.as_tensor(low, dtype=DTYPE).reshape(-1)
    high = torch.as_tensor(high, dtype=DTYPE).reshape(-1)
    x0 = torch.as_tensor(x0, dtype=DTYPE).reshape(-1)
    us = torch.minimum(torch.maximum(u_init.to(DTYPE), low), high)
    h, m = us.shape
    xs_b, us_b, c_b = rollout(problem, x0, us, low, high)
    xs, us, cost = xs_b[0], us_b[0], float(c_b[0].sum())
    history = [cost]
    alphas = torch.as_tensor(opt.alphas, dtype=DTYPE)
    k = us.new_zeros(h, m)
    gains = us.new_zeros(h, m, problem.state_dim)
    derivs: Derivatives | None = None
    stop = "max_iterations"
    it = 0
    if not math.isfinite(cost):
        return ILQGResult(xs, us, gains, k, history, mu, dmu, 0, "diverged")

    def increase() -> None:
        nonlocal mu, dmu
        dmu = max(dmu * opt.mu_factor, opt.mu_factor)
        mu = max(mu * dmu, opt.mu_min)

    def decrease() -> None:
        nonlocal mu, dmu
        dmu = min(dmu / opt.mu_factor, 1.0 / opt.mu_factor)
        mu = mu * dmu if mu > opt.mu_min else 0.0

    while it < opt.max_iterations:
        it += 1
        if derivs is None:
            derivs = problem.derivatives(xs, us)
        bp = backward_pass(derivs, us, low, high, mu, opt)
        while bp is None:
            increase()
            if mu > opt.mu_max:
                break
            bp = backward_pass(derivs, us, low, high, mu, opt)
        if bp is None:
            stop = "mu_max"
            break
        k, gains = bp.k, bp.gains
        g_norm = float((k.abs() / (us.abs() + 1.0)).amax(dim=1).mean())
        if g_norm < opt.tol_grad and mu < 1e-5:
            decrease()
            stop = "tol_grad"
            break

        accepted = None
        dv1, dv2 = bp.dv
        if opt.line_search == "parallel" and problem.batched:
            xs_new, us_new, c_new = rollout(
                problem, x0, us, low, high, xs_ref=xs, k=k, gains=gains, alphas=alphas
            )
            totals = c_new.sum(1)
            totals = torch.where(torch.isnan(totals), torch.inf, totals)
            best = int(torch.argmin(totals))
            alpha = float(alphas[best])
            dcost = cost - float(totals[best])
            expected = -alpha * (dv1 + alpha * dv2)
            z = dcost / expected if expected > 0 else _sign(dcost)
            if z > opt.z_min:
                accepted = (xs_new[best], us_new[best], float(totals[best]), dcost)
        else:
            for alpha in opt.alphas:
                a = torch.tensor([alpha], dtype=DTYPE)
                xs_new, us_new, c_new = rollout(
                    problem, x0, us, low, high, xs_ref=xs, k=k, gains=gains, alphas=a
                )
                total = float(c_new.sum())
                if math.isnan(total):
                    total = math.inf
                dcost = cost - total
                expected = -alpha * (dv1 + alpha * dv2)
                z = dcost / expected if expected > 0 else _sign(dcost)
                if z > opt.z_min:
                    accepted = (xs_new[0], us_new[0], total, dcost)
                    break

        if accepted is not None:
            decrease()
            xs, us, new_cost, dcost = accepted
            history.append(new_cost)
            derivs = None
            old = cost
            cost = new_cost
            if dcost < opt.tol_rel * abs(old):
                stop = "tol_rel"
                break
        else:
            increase()
            if mu > opt.mu_max:
                stop = "mu_max"
                break
    return ILQGResult(xs, us, gains, k, history, mu, dmu, it, stop)


# ------------------------------------------------------------------------------------------------
# (a) autograd of torch dynamics


class AutogradProblem:
    """Provider (a): a differentiable torch step and reward.

    ``dynamics(x [..., n], u [..., m]) -> [..., n]``, ``reward_fn(x, u, x') -> [...]`` (the task's
    conventions, :mod:`envs.spec`), optional ``terminal_cost(x [..., n]) -> [...]``. The stored
    state is the observation itself (``S = n``).

    ``cost_hessian``: ``"exact"`` differentiates ``l(x, u) = -reward(x, u, f(x, u))`` twice
    (``vmap(jacrev(jacrev(l)))``, ``f``'s curvature included); ``"gauss_newton"`` takes the
    Hessian of ``-reward`` in ``(x, u, x')`` and chains it through the linearized step (iLQG's
    approximation; ~3x cheaper on RK4 dynamics). Both give the exact gradient.
    """

    batched = True

    def __init__(
        self,
        dynamics: Callable[[Tensor, Tensor], Tensor],
        reward_fn: RewardFn,
        state_dim: int,
        act_dim: int,
        *,
        terminal_cost: Callable[[Tensor], Tensor] | None = None,
        cost_hessian: Literal["exact", "gauss_newton"] = "exact",
    ) -> None:
        if cost_hessian not in ("exact", "gauss_newton"):
            raise ValueError(
                f"cost_hessian must be 'exact' or 'gauss_newton', got {cost_hessian!r}"
            )
        self.dynamics = dynamics
        self.reward_fn = reward_fn
        self.state_dim, self.act_dim = int(state_dim), int(act_dim)
        self.terminal_cost = terminal_cost
        self.cost_hessian = cost_hessian
        n, m = self.state_dim, self.act_dim

        def step_cost(z: Tensor) -> tuple[Tensor, Tensor]:
            x, u = z[:n], z[n:]
            xn = self.dynamics(x, u)
            return -self.reward_fn(x, u, xn), xn

        grad_and_next = jacrev(step_cost, has_aux=True)

        def stacked(z: Tensor) -> tuple[Tensor, Tensor]:
            g, xn = grad_and_next(z)
            return torch.cat([g, xn]), g

        # one call for the horizon: [H, n+m] -> ([H, n+m+n, n+m] = [hessian; f_z], [H, n+m])
        self._exact = vmap(jacrev(stacked, has_aux=True))

        def step_aux(z: Tensor) -> tuple[Tensor, Tensor]:
            xn = self.dynamics(z[:n], z[n:])
            return xn, xn

        def neg_reward(w: Tensor) -> Tensor:
            return -self.reward_fn(w[:n], w[n : n + m], w[n + m :])

        reward_grad = jacrev(neg_reward)

        def reward_stacked(w: Tensor) -> tuple[Tensor, Tensor]:
            g = reward_grad(w)
            return g, g

        self._jac_f = vmap(jacrev(step_aux, has_aux=True))  # [H, n+m] -> [H, n, n+m], [H, n]
        self._reward_quad = vmap(jacrev(reward_stacked, has_aux=True))  # [H, 2n+m] -> H, g

    def step(self, x: Tensor, u: Tensor) -> Tensor:
        return self.dynamics(x, u)

    def cost(self, xs: Tensor, us: Tensor) -> Tensor:
        c = -self.reward_fn(xs[..., :-1, :], us, xs[..., 1:, :])
        if self.terminal_cost is None:
            final = c.new_zeros((*c.shape[:-1], 1))
        else:
            final = self.terminal_cost(xs[..., -1, :]).unsqueeze(-1)
        return torch.cat([c, final], -1)

    def difference(self, x: Tensor, ref: Tensor) -> Tensor:
        return x - ref

    @torch.no_grad()  # torch.func transforms still differentiate; nothing tracks model weights
    def derivatives(self, xs: Tensor, us: Tensor) -> Derivatives:
        z = torch.cat([xs[:-1], us], -1)
        if self.cost_hessian == "exact":
            jac, grad = self._exact(z)
            hess, fz = jac[:, : z.shape[1]], jac[:, z.shape[1] :]
        else:
            fz, xn = self._step_jacobian(z)
            hw, gw = self._reward_quad(torch.cat([z, xn], -1))
            grad, hess = chain_cost(gw, hw, fz)
        return self._assemble(xs, fz, grad, hess)

    def _step_jacobian(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z [H, n+m] -> (f_z [H, n, n+m], f(z) [H, n])`` (``vmap(jacrev(f))``)."""
        return self._jac_f(z)

    def _assemble(self, xs: Tensor, fz: Tensor, grad: Tensor, hess: Tensor) -> Derivatives:
        n = self.state_dim
        hess = 0.5 * (hess + hess.transpose(1, 2))
        cx_f, cxx_f = self._terminal_derivatives(xs[-1])
        return Derivatives(
            fx=fz[:, :, :n],
            fu=fz[:, :, n:],
            cx=torch.cat([grad[:, :n], cx_f[None]]),
            cu=grad[:, n:],
            cxx=torch.cat([hess[:, :n, :n], cxx_f[None]]),
            cuu=hess[:, n:, n:],
            cux=hess[:, n:, :n],
        )

    def _terminal_derivatives(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n = self.state_dim
        if self.terminal_cost is None:
            return x.new_zeros(n), x.new_zeros(n, n)
        fn = self.terminal_cost
        g = jacrev(fn)(x)
        h = jacrev(jacrev(fn))(x)
        return g, 0.5 * (h + h.T)


def chain_cost(gw: Tensor, hw: Tensor, fz: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient ``[H, n+m]`` and Hessian ``[H, n+m, n+m]`` of ``c(z, f(z))`` with ``f`` linearized.

    ``gw [H, 2n+m]`` and ``hw [H, 2n+m, 2n+m]`` are the derivatives of ``c`` in ``w = (z, x')``,
    ``fz [H, n, n+m]`` the step's Jacobian: ``J = [I; f_z]``, ``g = J'g_w``, ``H = J'H_w J``.
    """
    k = fz.shape[2]
    eye = torch.eye(k, dtype=fz.dtype).expand(fz.shape[0], k, k)
    jac = torch.cat([eye, fz], 1)  # [H, 2n+m, n+m]
    grad = (jac.transpose(1, 2) @ gw.unsqueeze(-1)).squeeze(-1)
    hess = jac.transpose(1, 2) @ hw @ jac
    return grad, hess


# ------------------------------------------------------------------------------------------------
# (c) a learned ensemble's mean prediction


class EnsembleProblem(AutogradProblem):
    """Provider (c): :class:`AutogradProblem` on a :class:`ProbabilisticEnsemble`'s mean next state
    (``step(obs, act, mode="mean", sample=False)``: the elites' average, no sampling). The network
    runs in its own float32; states, costs and derivatives are cast to float64."""

    def __init__(
        self,
        model: ProbabilisticEnsemble,
        reward_fn: RewardFn,
        *,
        cost_hessian: Literal["exact", "gauss_newton"] = "gauss_newton",
    ) -> None:
        self.model = model
        super().__init__(
            self._mean_step,
            reward_fn,
            model.obs_dim,
            model.act_dim,
            cost_hessian=cost_hessian,
        )

    @torch.no_grad()
    def derivatives(self, xs: Tensor, us: Tensor) -> Derivatives:
        # weights frozen: autograd then forms no weight gradient (nothing needs one)
        frozen = [p for p in self.model.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            return super().derivatives(xs, us)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _step_jacobian(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The step's Jacobian by one reverse pass over the horizon replicated ``n`` times (row
        ``i`` of copy ``i`` seeded): the network is row-wise, so this is exact. ``torch.func``'s
        ``vmap(jacrev)`` gives the same numbers ~30x slower on the 7 x (4 x 200) ensemble
        (measured: 160 ms vs. 5 ms for H = 30 on one thread)."""
        n, (h, k) = self.state_dim, z.shape
        with torch.enable_grad():
            zr = z.unsqueeze(0).expand(n, h, k).clone().requires_grad_(True)
            y = self._mean_step(zr[..., :n], zr[..., n:])  # [n, H, n]
            seed = torch.eye(n, dtype=y.dtype).unsqueeze(1).expand(n, h, n)
            (g,) = torch.autograd.grad(y, zr, seed)
        return g.permute(1, 0, 2), y[0].detach()

    def _mean_step(self, x: Tensor, u: Tensor) -> Tensor:
        lead = x.shape[:-1]
        dtype = self.model.max_logvar.dtype
        out = self.model.step(
            x.reshape(-1, self.state_dim).to(dtype),
            u.reshape(-1, self.act_dim).to(dtype),
            mode="mean",
            sample=False,
        ).next_obs
        return out.reshape(*lead, self.state_dim).to(x.dtype)


# ------------------------------------------------------------------------------------------------
# (b) the MuJoCo simulator


def _fd_stencil(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central-difference stencil for the gradient and Hessian of a function of ``dim`` variables.

    Returns ``points [P, dim]`` (offsets in units of the step ``h``) and matrices ``G [dim, P]``,
    ``Hm [dim * dim, P]`` with ``grad = G @ f(points) / h`` and ``hess = Hm @ f(points) / h^2``.
    ``P = 1 + 2 dim + 2 dim (dim - 1)``: the center, ``+-e_i``, and ``(+-e_i +-e_j)`` for ``i < j``.
    """
    eye = np.eye(dim)
    pairs = [(i, j) for i in range(dim) for j in range(i + 1, dim)]
    pts = [np.zeros(dim)]
    for i in range(dim):
        pts += [eye[i], -eye[i]]
    for i, j in pairs:
        pts += [eye[i] + eye[j], eye[i] - eye[j], -eye[i] + eye[j], -eye[i] - eye[j]]
    points = np.asarray(pts)
    p = len(points)
    g = np.zeros((dim, p))
    hm = np.zeros((dim, dim, p))
    for i in range(dim):
        g[i, 1 + 2 * i], g[i, 2 + 2 * i] = 0.5, -0.5
        hm[i, i, 0], hm[i, i, 1 + 2 * i], hm[i, i, 2 + 2 * i] = -2.0, 1.0, 1.0
    base = 1 + 2 * dim
    for q, (i, j) in enumerate(pairs):
        c = np.array([0.25, -0.25, -0.25, 0.25])
        hm[i, j, base + 4 * q : base + 4 * q + 4] = c
        hm[j, i, base + 4 * q : base + 4 * q + 4] = c
    return points, g, hm.reshape(dim * dim, p)


@dataclass
class MujocoProblem:
    """Provider (b): the MuJoCo simulator of a ``Capability.SIMULATOR`` task.

    Stored states ``[S] = [mjSTATE_FULLPHYSICS (Sp), stage values (K)]`` (build the first with
    :meth:`initial_state`); tangent size ``n = 2 nv + na``. ``step`` is the env step: ``frame_skip``
    ``mj_step``\\ s with the control held, then the stage values read as the env's ``_get_obs``
    does. See the module docstring for how the derivatives are computed.

    Args:
        task: the task (its env is built once to take its ``MjModel``).
        eps: finite-difference step of the dynamics derivatives (``mjd_transitionFD``'s ``eps``,
            and the central differences on RK4 models; ``1e-6`` as ``envs.mujoco.inverted_pendulum``).
        cost_eps: step of the cost's central differences (second differences: ``1e-4`` balances
            truncation, ``O(h^2)``, and round-off, ``O(1e-16 |c| / h^2)``).
        method: ``"auto"``: ``mjd_transitionFD`` unless the integrator is RK4; or force
            ``"transition_fd"`` / ``"rollout_fd"``.
    """

    task: TaskSpec
    eps: float = 1e-6
    cost_eps: float = 1e-4
    method: Literal["auto", "transition_fd", "rollout_fd"] = "auto"
    batched: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        import mujoco
        from mujoco import rollout as mj_rollout

        task = self.task
        if task.reward_fn is None:
            raise ValueError(f"task {task.name!r} has no reward_fn")
        layout = SimulatorLayout.of(task)
        self.model, self.frame_skip = layout.model, layout.frame_skip
        self._obs_fn, self._stage_fn, self._sig = layout.obs_fn, layout.stage_fn, layout.sig
        self.phys_dim, self._qpos, self._qvel, self._act = (
            layout.phys_dim,
            layout.qpos,
            layout.qvel,
            layout.act,
        )
        m = self.model
        self._mj = mujoco
        self.nq, self.nv, self.na = int(m.nq), int(m.nv), int(m.na)
        self.state_dim = 2 * self.nv + self.na
        self.act_dim = int(m.nu)
        self._data = mujoco.MjData(m)
        self.stage_dim = layout.stage_dim
        self._pool = mj_rollout.Rollout(nthread=0)
        self._rollout_datas = [mujoco.MjData(m)]
        self._stencil = _fd_stencil(self.state_dim)
        o_dim, nu, reward_fn = task.obs_dim, self.act_dim, task.reward_fn

        def neg_reward(v: Tensor) -> Tensor:
            return -reward_fn(v[:o_dim], v[o_dim : o_dim + nu], v[o_dim + nu :])

        def stacked(v: Tensor) -> tuple[Tensor, Tensor]:
            g = jacrev(neg_reward)(v)
            return g, g

        self._reward_quad = vmap(jacrev(stacked, has_aux=True))  # [H, 2O+m] -> Hessian, grad

    # --- states ----------------------------------------------------------------------------

    @property
    def uses_transition_fd(self) -> bool:
        """Whether the dynamics derivatives come from ``mjd_transitionFD`` (else rollout FD)."""
        if self.method == "auto":
            return int(self.model.opt.integrator) != int(self._mj.mjtIntegrator.mjINT_RK4)
        return self.method == "transition_fd"

    def _stage(self) -> np.ndarray:
        if self._stage_fn is None:
            return np.zeros(0)
        return np.asarray(self._stage_fn(self.model, self._data), np.float64).reshape(-1)

    def initial_state(self, sim_state: np.ndarray) -> Tensor:
        """``[Sp] -> [S]``: an env's ``info["sim_state"]`` with the stage values of the state
        itself (``mj_forward``; see :mod:`envs.simulate` on why the env's may differ slightly)."""
        phys = np.asarray(sim_state, np.float64).reshape(-1)
        if phys.size != self.phys_dim:
            raise ValueError(f"sim_state must have {self.phys_dim} entries, got {phys.size}")
        stage = np.zeros(0)
        if self._stage_fn is not None:
            self._mj.mj_setState(self.model, self._data, phys, self._sig)
            self._mj.mj_forward(self.model, self._data)
            stage = self._stage()
        return torch.from_numpy(np.concatenate([phys, stage]))

    def step(self, x: Tensor, u: Tensor) -> Tensor:
        mj, m, d, sig = self._mj, self.model, self._data, self._sig
        xn = x.detach().numpy().copy()
        ctrl = u.detach().numpy()
        for i in range(xn.shape[0]):
            mj.mj_setState(m, d, xn[i, : self.phys_dim], sig)
            d.ctrl[:] = ctrl[i]
            mj.mj_step(m, d, self.frame_skip)
            mj.mj_getState(m, d, xn[i, : self.phys_dim], sig)
            if self.stage_dim:
                xn[i, self.phys_dim :] = self._stage()
        return torch.from_numpy(xn)

    def observe(self, states: np.ndarray) -> np.ndarray:
        """``[..., S] -> [..., O]``: the task's observation of stored states."""
        stage = states[..., self.phys_dim :] if self._stage_fn is not None else None
        return np.asarray(self._obs_fn(states[..., self._qpos], states[..., self._qvel], stage))

    def cost(self, xs: Tensor, us: Tensor) -> Tensor:
        assert self.task.reward_fn is not None
        obs = torch.from_numpy(self.observe(xs.detach().numpy())).to(DTYPE)
        c = -self.task.reward_fn(obs[..., :-1, :], us, obs[..., 1:, :])
        return torch.cat([c, c.new_zeros((*c.shape[:-1], 1))], -1)

    # --- tangent space ---------------------------------------------------------------------

    def _perturb(self, phys: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """``phys [..., Sp] (+) dx [..., n] -> [..., Sp]`` (positions via ``mj_integratePos``)."""
        out = np.array(phys, np.float64, copy=True)
        nv = self.nv
        if self.nq == nv:
            out[..., self._qpos] += dx[..., :nv]
        else:
            flat_q = out[..., self._qpos].reshape(-1, self.nq)
            flat_d = np.ascontiguousarray(dx[..., :nv].reshape(-1, nv))
            for i in range(flat_q.shape[0]):
                q = np.ascontiguousarray(flat_q[i])
                self._mj.mj_integratePos(self.model, q, flat_d[i], 1.0)
                flat_q[i] = q
            out[..., self._qpos] = flat_q.reshape(out[..., self._qpos].shape)
        out[..., self._qvel] += dx[..., nv : 2 * nv]
        out[..., self._act] += dx[..., 2 * nv :]
        return out

    def _tangent_difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a [..., Sp] (-) b [..., Sp] -> [..., n]``."""
        nv = self.nv
        if self.nq == nv:
            dq = a[..., self._qpos] - b[..., self._qpos]
        else:
            qa = a[..., self._qpos].reshape(-1, self.nq)
            qb = b[..., self._qpos].reshape(-1, self.nq)
            dq = np.empty((qa.shape[0], nv))
            for i in range(qa.shape[0]):
                self._mj.mj_differentiatePos(self.model, dq[i], 1.0, qb[i].copy(), qa[i].copy())
            dq = dq.reshape((*a.shape[:-1], nv))
        return np.concatenate(
            [dq, a[..., self._qvel] - b[..., self._qvel], a[..., self._act] - b[..., self._act]],
            -1,
        )

    def difference(self, x: Tensor, ref: Tensor) -> Tensor:
        p = self.phys_dim
        d = self._tangent_difference(x[..., :p].detach().numpy(), ref[..., :p].detach().numpy())
        return torch.from_numpy(d)

    # --- derivatives -----------------------------------------------------------------------

    def transition_derivatives(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """``xs [H, S]``, ``us [H, m]`` -> ``(A [H, n, n], B [H, n, m])`` of the env step."""
        if self.uses_transition_fd:
            return self._transition_fd(xs, us)
        return self._rollout_fd(xs, us)

    def _transition_fd(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """``mjd_transitionFD`` of every physics step, chained over the env step."""
        mj, m, d = self._mj, self.model, self._data
        n, nu, h = self.state_dim, self.act_dim, xs.shape[0]
        a_out, b_out = np.empty((h, n, n)), np.empty((h, n, nu))
        a_k, b_k = np.empty((n, n)), np.empty((n, nu))
        for t in range(h):
            mj.mj_setState(m, d, xs[t, : self.phys_dim], self._sig)
            d.ctrl[:] = us[t]
            a_env, b_env = np.eye(n), np.zeros((n, nu))
            for _ in range(self.frame_skip):
                mj.mjd_transitionFD(m, d, self.eps, True, a_k, b_k, None, None)
                a_env, b_env = a_k @ a_env, a_k @ b_env + b_k
                mj.mj_step(m, d)
            a_out[t], b_out[t] = a_env, b_env
        return torch.from_numpy(a_out), torch.from_numpy(b_out)

    def _rollout_fd(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """Central differences of the env step in tangent coordinates, one ``mujoco.rollout``."""
        n, nu, h, fs, sp = self.state_dim, self.act_dim, xs.shape[0], self.frame_skip, self.phys_dim
        k = n + nu
        dirs = np.concatenate([np.eye(k), -np.eye(k)]) * self.eps  # [2k, k]: + then -
        phys = np.repeat(xs[:, None, :sp], 2 * k, axis=1)  # [H, 2k, Sp]
        init = self._perturb(phys, np.broadcast_to(dirs[None, :, :n], (h, 2 * k, n)))
        ctrl = us[:, None, :] + dirs[None, :, n:]  # [H, 2k, m]
        ctrl_seq = np.repeat(ctrl.reshape(h * 2 * k, 1, nu), fs, axis=1)
        init = init.reshape(h * 2 * k, sp)
        states = np.empty((h * 2 * k, fs, sp))
        self._pool.rollout(
            [self.model] * (h * 2 * k),
            self._rollout_datas,
            init,
            np.ascontiguousarray(ctrl_seq),
            control_spec=int(self._mj.mjtState.mjSTATE_CTRL),
            skip_checks=True,
            nstep=fs,
            initial_warmstart=None,
            state=states,
            sensordata=None,
            chunk_size=None,
        )
        out = states[:, -1].reshape(h, 2, k, sp)
        jac = self._tangent_difference(out[:, 0], out[:, 1]) / (2 * self.eps)  # [H, k, n]
        jac = np.ascontiguousarray(jac.transpose(0, 2, 1))  # [H, n, k]
        return torch.from_numpy(jac[:, :, :n].copy()), torch.from_numpy(jac[:, :, n:].copy())

    def observation_derivatives(self, xs: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """The observation of states ``xs [T, S]`` and its first and second derivatives in
        tangent coordinates, by central differences of the task's ``StateObservation`` (stage
        values held): ``obs [T, O]``, ``jac [T, O, n]``, ``hess [T, O, n, n]``."""
        points, g_mat, h_mat = self._stencil
        t_len, n, sp, p = xs.shape[0], self.state_dim, self.phys_dim, len(points)
        phys = self._perturb(
            np.repeat(xs[:, None, :sp], p, 1),
            np.broadcast_to(points * self.cost_eps, (t_len, p, n)),
        )
        stage = np.broadcast_to(xs[:, None, sp:], (t_len, p, self.stage_dim))
        obs = torch.from_numpy(self.observe(np.concatenate([phys, stage], -1))).to(DTYPE)
        jac = torch.einsum("tpo,np->ton", obs, torch.from_numpy(g_mat)) / self.cost_eps
        hess = torch.einsum("tpo,qp->toq", obs, torch.from_numpy(h_mat)) / self.cost_eps**2
        return obs[:, 0], jac, hess.reshape(t_len, -1, n, n)

    def cost_derivatives(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """Gradient ``[H, N]`` and Hessian ``[H, N, N]`` of ``c = -reward(obs(x), u, obs(x'))`` in
        ``w = (dx, du, dx')`` (``N = 2n + m``) at every step.

        The reward is differentiated by autograd in ``(o, u, o')`` (``vmap(jacrev(jacrev))``, one
        call), the observation map by central differences (:meth:`observation_derivatives`), and
        the two chained exactly: ``c_w = M'r_v``, ``c_ww = M'r_vv M + sum_k r_{v_k} d2 o_k`` with
        ``M = diag(do/dx, I, do'/dx')``. Differences of the reward itself would see its step
        functions (InvertedDoublePendulum's alive bonus) as huge spurious slopes; autograd gives
        them zero derivative, as for the torch models.
        """
        assert self.task.reward_fn is not None
        n, nu = self.state_dim, self.act_dim
        h = us.shape[0]
        obs, jac, hess_o = self.observation_derivatives(xs)  # over H + 1 states
        o_dim = obs.shape[1]
        v = torch.cat([obs[:-1], torch.from_numpy(us), obs[1:]], -1)  # [H, 2O + m]
        r_hess, r_grad = self._reward_quad(v)
        m_mat = v.new_zeros(h, 2 * o_dim + nu, 2 * n + nu)
        m_mat[:, :o_dim, :n] = jac[:-1]
        m_mat[:, o_dim : o_dim + nu, n : n + nu] = torch.eye(nu, dtype=DTYPE)
        m_mat[:, o_dim + nu :, n + nu :] = jac[1:]
        grad = (m_mat.transpose(1, 2) @ r_grad.unsqueeze(-1)).squeeze(-1)
        hess = m_mat.transpose(1, 2) @ r_hess @ m_mat
        hess[:, :n, :n] += torch.einsum("to,toij->tij", r_grad[:, :o_dim], hess_o[:-1])
        hess[:, n + nu :, n + nu :] += torch.einsum(
            "to,toij->tij", r_grad[:, o_dim + nu :], hess_o[1:]
        )
        return grad, hess

    @torch.no_grad()
    def derivatives(self, xs: Tensor, us: Tensor) -> Derivatives:
        n = self.state_dim
        x_np, u_np = xs.detach().numpy(), us.detach().numpy()
        fx, fu = self.transition_derivatives(x_np[:-1], u_np)
        gw, hw = self.cost_derivatives(x_np, u_np)
        grad, hess = chain_cost(gw, hw, torch.cat([fx, fu], 2))
        hess = 0.5 * (hess + hess.transpose(1, 2))
        return Derivatives(
            fx=fx,
            fu=fu,
            cx=torch.cat([grad[:, :n], grad.new_zeros(1, n)]),
            cu=grad[:, n:],
            cxx=torch.cat([hess[:, :n, :n], hess.new_zeros(1, n, n)]),
            cuu=hess[:, n:, n:],
            cux=hess[:, n:, :n],
        )
