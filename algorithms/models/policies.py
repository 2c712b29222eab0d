"""PILCO's policy search: its controllers and their squashing into the action box (pilco-matlab
``ctrl/congp.m``, ``ctrl/conlin.m``, ``util/gSat.m``/``gSin.m``; Deisenroth's thesis, KIT 2010,
Sec. 3.5), their evaluation by the moment-matched rollout through a GP model
(:class:`MomentMatchedRollout`, pilco-matlab ``value.m``/``propagated.m``), and the deterministic
optimization of their parameters on it (:func:`optimize_policy`).

Each policy maps the policy inputs ``x [Dp]`` to an unsquashed action ``u~ [U]`` at a point
(``__call__``) and, for ``x ~ N(m, s)``, gives the moments of ``u~`` in the ``(M, S, V)`` form of
:mod:`algorithms.models.gp` (``V = s^-1 cov[x, u~]``) through :meth:`moment_fn`. The squash
``u = mid + half * sat(u~)`` then bounds the action (:func:`squash_moments`, :func:`squash`).
Float64 torch (``algorithms.models.gp.GP_DTYPE``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from algorithms.models.gp import (
    GP_DTYPE,
    GPModel,
    augment,
    augment_points,
    fill_in,
    gp_moments,
    gsat,
    gsin,
    lbfgs,
    loss_sat,
    sat_value,
    se_ard,
)
from envs.spec import SaturatingCost

Tensor = torch.Tensor
MomentFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
"""``(m [Dp], s [Dp, Dp]) -> (M [U], S [U, U], V [Dp, U])``."""
Squash = Literal["sat", "sin"]
"""``"sat"``: ``(9 sin x + sin 3x) / 8`` (``gSat``); ``"sin"``: ``sin x`` (``gSin``)."""


class RBFPolicy:
    """pilco-matlab ``congp``: ``u~(x) = sum_i beta_i k(x, c_i)``, ``beta = (K + 0.01^2 I)^-1 y``,
    SE-ARD ``k`` with unit signal variance. Parameters: centres ``c [N, Dp]``, targets
    ``y [U, N]``, ``log_ell [U, Dp]``."""

    NOISE = 0.01  # congp: policy.hyp(end) = log(0.01)

    def __init__(self, centres: Tensor, targets: Tensor, log_ell: Tensor) -> None:
        self.centres = centres.requires_grad_(True)
        self.targets = targets.requires_grad_(True)
        self.log_ell = log_ell.requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [self.centres, self.targets, self.log_ell]

    def _beta(self) -> Tensor:
        u = self.targets.shape[0]
        k = se_ard(self.centres, self.centres, self.log_ell, torch.zeros(u, dtype=GP_DTYPE))
        k = k + self.NOISE**2 * torch.eye(k.shape[-1], dtype=GP_DTYPE)
        chol = torch.linalg.cholesky(k)
        return torch.cholesky_solve(self.targets[:, :, None], chol)[..., 0]  # [U, N]

    def moment_fn(self) -> MomentFn:
        """gp2 moments of ``u~`` for ``x ~ N(m, s)`` at the current parameters (``beta`` solved
        once per rollout)."""
        beta = self._beta()
        zero = torch.zeros(self.targets.shape[0], dtype=GP_DTYPE)
        return lambda m, s: gp_moments(self.centres, beta, self.log_ell, zero, m, s)

    def __call__(self, x: Tensor) -> Tensor:
        """``[Dp] -> [U]`` at a point."""
        u = self.targets.shape[0]
        k = se_ard(x[None], self.centres, self.log_ell, torch.zeros(u, dtype=GP_DTYPE))[:, 0]
        return (k * self._beta()).sum(-1)


class LinearPolicy:
    """pilco-matlab ``conlin``: ``u~ = W x + b``, ``W [U, Dp]``, ``b [U]``."""

    def __init__(self, w: Tensor, b: Tensor) -> None:
        self.w = w.requires_grad_(True)
        self.b = b.requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [self.w, self.b]

    def moment_fn(self) -> MomentFn:
        """Exact moments of ``u~ = W x + b``: ``(W m + b, W s W^T, W^T)``."""

        def moments(m: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            cov = self.w @ s @ self.w.T
            return self.w @ m + self.b, 0.5 * (cov + cov.T), self.w.T

        return moments

    def __call__(self, x: Tensor) -> Tensor:
        """``[Dp] -> [U]`` at a point."""
        return self.w @ x + self.b


def init_policy(
    kind: Literal["rbf", "linear"],
    cost: SaturatingCost,
    act_dim: int,
    num_basis: int,
    s0: Tensor,
    start_means: Tensor,
    generator: torch.Generator,
    *,
    one_start: bool,
) -> RBFPolicy | LinearPolicy:
    """A fresh policy on ``cost.policy_inputs`` (pilco-matlab ``settings_cp.m``). ``"linear"``:
    ``W ~ 0.01 N(0, 1)``, ``b = 0`` (``conlin``). ``"rbf"``: targets ``0.1 N(0, 1)``, length-scales
    ``cost.policy_lengthscales``, centres drawn from ``p(x_0)`` mapped to the policy inputs: with
    ``one_start``, from the augmented Gaussian of ``N(start_means[0], s0)``; otherwise states drawn
    from the starts ``N(start_means[k], s0)`` in turn (``start_means [K, S]``, ``s0 [S, S]``), then
    augmented. Draws from ``generator`` only."""
    dp, u = len(cost.policy_inputs), act_dim
    if kind == "linear":
        w = 1e-2 * torch.randn(u, dp, generator=generator, dtype=GP_DTYPE)  # conlin init
        return LinearPolicy(w, torch.zeros(u, dtype=GP_DTYPE))
    pi, n = list(cost.policy_inputs), num_basis
    if one_start:
        m, s = augment(start_means[0], s0, cost.angle_dims)
        mp, sp = m[pi], s[pi][:, pi]
        chol = torch.linalg.cholesky(sp + 1e-9 * torch.eye(dp, dtype=GP_DTYPE))
        z = torch.randn(n, dp, generator=generator, dtype=GP_DTYPE)
        centres = mp + z @ chol.T
    else:
        chol = torch.linalg.cholesky(s0)
        z = torch.randn(n, s0.shape[0], generator=generator, dtype=GP_DTYPE)
        x = start_means[torch.arange(n) % len(start_means)] + z @ chol.T
        aug = augment_points(x.numpy(), cost.angle_dims)[:, pi]
        centres = torch.tensor(aug, dtype=GP_DTYPE).contiguous()
    targets = 0.1 * torch.randn(u, n, generator=generator, dtype=GP_DTYPE)
    log_ell = torch.log(torch.tensor(cost.policy_lengthscales, dtype=GP_DTYPE)).expand(u, dp)
    return RBFPolicy(centres, targets, log_ell.clone())


def squash_moments(
    m: Tensor, s: Tensor, kind: Squash, mid: Tensor, half: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(M [U], S [U, U], V [U, U])`` of ``u = mid + half * squash(u~)`` for ``u~ ~ N(m, s)``."""
    fn = gsat if kind == "sat" else gsin
    mo, so, vo = fn(m, s, list(range(m.shape[0])), half)
    return mo + mid, so, vo


def squash(raw: Tensor, kind: Squash, mid: Tensor, half: Tensor) -> Tensor:
    """``[U] -> [U]``: ``mid + half * squash(raw)`` at a point."""
    return mid + half * (sat_value(raw) if kind == "sat" else torch.sin(raw))


class MomentMatchedRollout:
    """The expected cost of a policy under a GP model, by moment matching (pilco-matlab
    ``propagated.m`` / ``value.m``; the ``PILCO`` plugin's module docstring draws one step).

    Joint vector of one step: ``[a, u~, u]``, ``a = [state, sin/cos of the angle dims]``
    (``aug``). Args: ``gp`` the dynamics model (read at every call, so later fits apply),
    ``cost`` the task's :class:`~envs.spec.SaturatingCost`, ``weight [aug, aug]`` its ``W``
    (``Q / width^2``), ``s0 [S, S]`` and ``start_means [K, S]`` ``p(x_0)``, ``act_mid``,
    ``act_half [U]`` the action box, ``kind`` the squash.
    """

    def __init__(
        self,
        gp: GPModel,
        cost: SaturatingCost,
        weight: Tensor,
        s0: Tensor,
        start_means: Tensor,
        act_mid: Tensor,
        act_half: Tensor,
        kind: Squash,
    ) -> None:
        self.gp, self.angle_dims, self.kind = gp, cost.angle_dims, kind
        self.target = torch.tensor(cost.target, dtype=GP_DTYPE)
        self.weight, self.s0, self.start_means = weight, s0, start_means
        self.act_mid, self.act_half = act_mid, act_half
        self.state_dim = len(cost.init_cov)
        a, u = self.state_dim + 2 * len(cost.angle_dims), act_mid.shape[0]
        self._pi = torch.tensor(cost.policy_inputs)
        self._raw = torch.arange(a, a + u)
        self._gi = torch.tensor([*cost.dyn_inputs, *range(a + u, a + 2 * u)])

    def augment(self, m: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """``N(m, s)`` of the state -> ``N`` of ``aug``."""
        return augment(m, s, self.angle_dims)

    def step(
        self, m: Tensor, s: Tensor, mm: Tensor, ss: Tensor, policy: MomentFn
    ) -> tuple[Tensor, Tensor]:
        """One control step of ``x ~ N(m [S], s [S, S])`` given its augmented ``N(mm, ss)``."""
        pi, raw, gi = self._pi, self._raw, self._gi
        mm, ss = fill_in(mm, ss, pi, policy(mm[pi], ss[pi[:, None], pi]))  # + u~
        squashed = squash_moments(
            mm[raw], ss[raw[:, None], raw], self.kind, self.act_mid, self.act_half
        )
        mm, ss = fill_in(mm, ss, raw, squashed)  # + u
        md, sd, vd = self.gp.moments(mm[gi], ss[gi[:, None], gi])
        c = ss[: self.state_dim, gi] @ vd  # cov[x, delta]
        s_next = s + sd + c + c.T
        return m + md, 0.5 * (s_next + s_next.T)

    def cost(self, m: Tensor, s: Tensor) -> Tensor:
        """Expected saturating cost of ``N(m, s)`` (pilco-matlab ``lossSat``)."""
        ma, sa = self.augment(m, s)
        return loss_sat(ma, sa, self.target, self.weight)

    def expected_costs(self, policy: MomentFn, horizon: int) -> Tensor:
        """``[H]``: ``E[c(x_t)]``, ``t = 1..H``, of the rollout from ``p(x_0)`` (the augmentation
        of ``x_t`` serves its cost and the next step), averaged over the start distributions
        when there are several (one rollout each, batched by ``torch.func.vmap``: ~7x faster
        than a loop over 8 starts)."""

        def rollout(mu: Tensor) -> Tensor:
            m, s = mu, self.s0
            mm, ss = self.augment(m, s)
            costs = []
            for _ in range(horizon):
                m, s = self.step(m, s, mm, ss, policy)
                mm, ss = self.augment(m, s)
                costs.append(loss_sat(mm, ss, self.target, self.weight))
            return torch.stack(costs)

        if len(self.start_means) == 1:
            return rollout(self.start_means[0])
        return torch.func.vmap(rollout)(self.start_means).mean(0)


@dataclass
class PolicySearch:
    """The result of :func:`optimize_policy`."""

    cost_before: float
    """The objective at the initial parameters."""
    cost: float
    """The best objective seen (the parameters are left at it)."""
    evaluations: int
    """Objective evaluations."""
    trace: list[float]
    """The objective at every evaluation."""


def optimize_policy(
    params: list[Tensor],
    objective: Callable[[], Tensor],
    *,
    optimizer: Literal["lbfgs", "adam"],
    iterations: int,
    lr: float,
) -> PolicySearch:
    """Minimise the differentiable scalar ``objective()`` over ``params`` (in place) and leave them
    at the best value seen (a final line-search step may be worse). ``"lbfgs"``: L-BFGS with a
    strong-Wolfe line search, ``iterations`` iterations (pilco-matlab ``minimize``); ``"adam"``:
    ``iterations`` Adam steps of rate ``lr``. A step that leaves the positive-definite cone
    (``LinAlgError``) ends the search with the best parameters so far."""
    with torch.no_grad():
        j0 = float(objective())
    best = (j0, [p.detach().clone() for p in params])
    trace: list[float] = []

    def tracked() -> Tensor:
        nonlocal best
        j = objective()
        jv = float(j.detach())
        trace.append(jv)
        if math.isfinite(jv) and jv < best[0]:
            best = (jv, [p.detach().clone() for p in params])
        return j

    try:
        if optimizer == "lbfgs":
            opt: torch.optim.Optimizer = lbfgs(
                params, iterations, tolerance_grad=1e-7, tolerance_change=1e-9, history=100
            )

            def closure() -> Tensor:
                opt.zero_grad()
                j = tracked()
                j.backward()
                return j

            opt.step(closure)
        else:
            opt = torch.optim.Adam(params, lr=lr)
            for _ in range(iterations):
                opt.zero_grad()
                tracked().backward()
                opt.step()
    except torch.linalg.LinAlgError:  # a line-search step left the PD cone: keep the best
        pass
    with torch.no_grad():
        for p, v in zip(params, best[1], strict=True):
            p.copy_(v)
    return PolicySearch(j0, best[0], len(trace), trace)
