"""Box-constrained quadratic program by projected Newton: the control-limited step of iLQG's
backward pass (Tassa, Mansard & Todorov 2014, "Control-limited differential dynamic programming",
ICRA; constants and control flow of Tassa's reference code ``boxQP.m``, MathWorks File Exchange
52069).

Shapes: ``m`` the number of variables (controls).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

Tensor = torch.Tensor


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
