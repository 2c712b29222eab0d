"""iLQG: iterative linear-quadratic trajectory optimization with control limits (the solver the
``ilqg`` plugin plans with).

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

Derivatives come from a :class:`~algorithms.planners.derivatives.Problem`: torch autograd
(:mod:`algorithms.planners.derivatives`: ``AutogradProblem``, ``EnsembleProblem``) or the MuJoCo
simulator (:mod:`algorithms.planners.mujoco_problem`: ``MujocoProblem``); the box-QP is
:mod:`algorithms.planners.boxqp`.

Shapes: ``H`` horizon, ``S`` stored state size, ``n`` tangent state size (rows of ``f_x``; ``S``
for torch models), ``m`` action size, ``B`` trajectories rolled out at once. All solver math is
float64 torch on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple

import numpy as np
import torch

from algorithms.api import NonNegativeFloat, NonNegativeInt, PositiveFloat, Range
from algorithms.planners.boxqp import box_qp
from algorithms.planners.derivatives import SOLVER_DTYPE, Derivatives, Problem

Tensor = torch.Tensor


#: ``iLQG.m``'s backtracking coefficients ``Alpha = 10 .^ linspace(0, -3, 11)``.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(0.0, -3.0, 11))


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
def forward_pass(
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
    eye_m = torch.eye(m, dtype=SOLVER_DTYPE)
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
    low = torch.as_tensor(low, dtype=SOLVER_DTYPE).reshape(-1)
    high = torch.as_tensor(high, dtype=SOLVER_DTYPE).reshape(-1)
    x0 = torch.as_tensor(x0, dtype=SOLVER_DTYPE).reshape(-1)
    us = torch.minimum(torch.maximum(u_init.to(SOLVER_DTYPE), low), high)
    h, m = us.shape
    xs_b, us_b, c_b = forward_pass(problem, x0, us, low, high)
    xs, us, cost = xs_b[0], us_b[0], float(c_b[0].sum())
    history = [cost]
    alphas = torch.as_tensor(opt.alphas, dtype=SOLVER_DTYPE)
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
            xs_new, us_new, c_new = forward_pass(
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
                a = torch.tensor([alpha], dtype=SOLVER_DTYPE)
                xs_new, us_new, c_new = forward_pass(
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
