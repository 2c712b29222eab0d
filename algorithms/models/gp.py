"""Gaussian-process dynamics model and the analytic moment matching of PILCO.

Deisenroth & Rasmussen, "PILCO: A Model-Based and Data-Efficient Approach to Policy Search",
ICML 2011; the equations are those of Deisenroth's thesis (KIT 2010, Sec. 2.3 and App. A) and of
Deisenroth, Fox & Rasmussen, "Gaussian Processes for Data-Efficient Learning in Robotics and
Control", TPAMI 2015 (Sec. 4-5); defaults follow the official code (UCL-SML/pilco-matlab,
``gp/train.m``, ``gp/hypCurb.m``, ``gp/gp0d.m``/``gp2d.m``, ``util/gSin.m``/``gSat.m``/``gTrig.m``,
``loss/lossSat.m``). Everything is written here in torch (float64), differentiable with autograd
with respect to the input mean and covariance and to any parameter that enters them.

Shapes: ``n`` training points, ``D`` input dims, ``E`` outputs (one independent GP each).

- :class:`GPModel`: one GP per output dim with a squared-exponential ARD kernel
  ``k_a(x, x') = sf_a^2 exp(-(x - x')^T diag(ell_a)^-2 (x - x') / 2)`` plus noise ``sn_a^2``.
  Hyperparameters are fitted by L-BFGS on the summed negative log marginal likelihood of all
  ``E`` GPs (one batched Cholesky, no loop over outputs), plus pilco-matlab's ``hypCurb``
  penalties (length-scales far from the inputs' spread, signal-to-noise ratios above 1000).
  Sparse options above ``max_points`` training pairs (a seeded draw of ``max_points`` of them):
  ``"fitc"`` (default, pilco-matlab ``gp1d``): they are the FITC inducing inputs (Snelson &
  Ghahramani 2006), the posterior still uses all pairs and the moment matching runs on the
  inducing inputs with FITC's ``beta`` and ``iK``; unlike pilco-matlab they are not optimized
  (they stay the drawn subset) and the hyperparameters come from the full GP on all pairs
  (as ``train.m``). ``"sod"``: the GP is simply fitted on that subset (subset of data).
- :func:`gp_moments`: the moments of ``f(x)`` for ``x ~ N(m, S)`` (thesis Eqs. 2.34-2.56): mean,
  full ``E x E`` covariance across outputs (including the model's own uncertainty
  ``E_x[var_f(x)]`` when ``iK`` is given, as ``gp0``; without it, the moments of the posterior
  mean only, as ``gp2``, which is how PILCO's RBF policy is propagated) and
  ``V = S^-1 cov[x, f(x)]`` (``D x E``), the form in which pilco-matlab chains input-output
  covariances: ``cov[y, f(x)] = cov[y, x] V`` for any ``y`` jointly Gaussian with ``x``.
- :func:`trig_moments` / :func:`gtrig` / :func:`gsin` / :func:`gsat`: exact moments of
  ``sin``/``cos`` of Gaussian dims (angles; the squashing ``e sin(x)`` and pilco-matlab's
  ``gSat`` squash ``e (9 sin x + sin 3x) / 8``), in the same ``(M, S, V)`` form.
- :func:`loss_sat`: ``1 - E[exp(-(x - z)^T W (x - z) / 2)]`` for ``x ~ N(m, S)``.
- :func:`fill_in` / :func:`augment`: the joint Gaussian of ``x`` and ``f(x)`` from those moments
  (a state with the sin and cos of its angles appended).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Tensor = torch.Tensor
GP_DTYPE = torch.float64

#: pilco-matlab ``gp/train.m``: ``curb.snr = 1000; curb.ls = 100`` and ``hypCurb``'s power 30.
SNR_CURB = 1000.0
LENGTHSCALE_CURB = 100.0
CURB_POWER = 30


# --------------------------------------------------------------------------- kernels & training
def lbfgs(
    params: list[Tensor],
    iterations: int,
    *,
    tolerance_grad: float,
    tolerance_change: float,
    history: int,
) -> torch.optim.LBFGS:
    """L-BFGS with a strong-Wolfe line search (pilco-matlab's ``minimize`` is a line-search
    quasi-Newton method too), as the GP fit and the policy search use it."""
    return torch.optim.LBFGS(
        params,
        max_iter=iterations,
        line_search_fn="strong_wolfe",
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        history_size=history,
    )


def se_ard(x1: Tensor, x2: Tensor, log_ell: Tensor, log_sf: Tensor) -> Tensor:
    """``[n1, D], [n2, D], [E, D], [E] -> [E, n1, n2]``: the SE-ARD kernel of every output."""
    ell = log_ell.exp()[:, None, :]
    a, b = x1[None] / ell, x2[None] / ell
    d2 = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2.0 * a @ b.transpose(-1, -2)
    return (2.0 * log_sf)[:, None, None].exp() * torch.exp(-0.5 * d2.clamp_min(0.0))


def _cholesky(k: Tensor) -> Tensor:
    """Cholesky factor with escalating jitter (relative to the mean diagonal) on failure."""
    chol, info = torch.linalg.cholesky_ex(k)
    jitter = 1e-10
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    while bool((info > 0).any()):
        scale = k.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
        chol, info = torch.linalg.cholesky_ex(k + jitter * scale * eye)
        jitter *= 10.0
        if jitter > 1e-2:
            raise torch.linalg.LinAlgError("kernel matrix is not positive definite")
    return chol


def neg_log_marginal_likelihood(
    x: Tensor, y: Tensor, log_ell: Tensor, log_sf: Tensor, log_sn: Tensor
) -> Tensor:
    """``[n, D], [n, E], [E, D], [E], [E] -> [E]``: ``-log p(y_a | X)`` of each output's GP."""
    n = x.shape[0]
    k = se_ard(x, x, log_ell, log_sf)
    k = k + (2.0 * log_sn).exp()[:, None, None] * torch.eye(n, dtype=x.dtype, device=x.device)
    chol = _cholesky(k)
    yt = y.T[:, :, None]  # [E, n, 1]
    alpha = torch.cholesky_solve(yt, chol)
    return (
        0.5 * (yt * alpha).sum((-1, -2))
        + chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        + 0.5 * n * math.log(2.0 * math.pi)
    )


def hyper_penalty(
    log_ell: Tensor,
    log_sf: Tensor,
    log_sn: Tensor,
    x_std: Tensor,
    *,
    ls: float = LENGTHSCALE_CURB,
    snr: float = SNR_CURB,
    power: int = CURB_POWER,
) -> Tensor:
    """``-> [E]``: pilco-matlab ``hypCurb``: ``sum(((log ell - log std(x)) / log ls)^p)`` keeps
    length-scales within a factor ``ls`` of the inputs' spread, ``((log sf - log sn) / log snr)^p``
    keeps the signal-to-noise ratio below ``snr`` (both ~0 inside, steep outside)."""
    pen_ell = (((log_ell - x_std.log()[None]) / math.log(ls)) ** power).sum(-1)
    pen_snr = ((log_sf - log_sn) / math.log(snr)) ** power
    return pen_ell + pen_snr


@dataclass
class GPFit:
    """What :meth:`GPModel.fit` reports."""

    nlml: float
    """Summed negative log marginal likelihood of the ``E`` GPs at the optimum (penalty excluded)."""
    points: int
    """Training pairs the hyperparameters were fitted on (after a subset-of-data cap)."""
    basis: int
    """Points the posterior is expanded on (``points``, or the FITC inducing inputs): the ``n``
    of the moment matching's ``O(E^2 n^2 D)`` cost."""
    iterations: int
    """L-BFGS iterations run."""


class GPModel:
    """``E`` independent SE-ARD GPs on shared inputs (PILCO's dynamics model).

    After :meth:`fit`: ``x [N, D]``, ``y [N, E]``, hyperparameters ``log_ell [E, D]``,
    ``log_sf [E]``, ``log_sn [E]``, FITC inducing inputs ``z [M, D]`` (or ``None``), and the
    cached ``beta [E, n]`` and ``iK [E, n, n]`` on the ``n`` :attr:`basis` points (full GP:
    ``iK = (K_a + sn_a^2 I)^-1``, ``beta = iK y_a``) used by :meth:`moments` and :meth:`predict`.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.z: Tensor | None = None
        """FITC inducing inputs ``[M, D]`` (``None``: the full GP on ``x``)."""
        self.log_ell: Tensor | None = None
        self.log_sf: Tensor | None = None
        self.log_sn: Tensor | None = None
        self.iK: Tensor | None = None
        self.beta: Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.beta is not None

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        iterations: int = 300,
        max_points: int | None = None,
        sparse: Literal["fitc", "sod"] = "fitc",
        rng: np.random.Generator | None = None,
        warm_start: bool = True,
    ) -> GPFit:
        """Fit hyperparameters on ``x [N, D] -> y [N, E]`` and cache the posterior.

        Above ``max_points`` pairs (``rng`` required then), ``max_points`` of them drawn without
        replacement by ``rng`` become either the inducing inputs of FITC (``sparse="fitc"``;
        hyperparameters from the full GP on all pairs, as ``gp/train.m``) or the whole training
        set (``"sod"``, subset of data). Initialisation as ``gp/train.m``: ``ell = std(x)``,
        ``sf = std(y)``, ``sn = std(y) / 10``; with ``warm_start`` the previous fit's
        hyperparameters instead (pilco-matlab keeps ``dynmodel.hyp`` between trials).
        ``iterations``: L-BFGS iterations (``trainOpt(1) = 300`` line searches).
        """
        inducing = None
        if max_points is not None and len(x) > max_points:
            if rng is None:
                raise ValueError("a sparse GP needs a seeded rng to choose its points")
            idx = np.sort(rng.choice(len(x), size=max_points, replace=False))
            if sparse == "sod":
                x, y = x[idx], y[idx]
            else:
                inducing = torch.as_tensor(np.asarray(x)[idx], dtype=GP_DTYPE, device=self.device)
        xt = torch.as_tensor(np.asarray(x), dtype=GP_DTYPE, device=self.device)
        yt = torch.as_tensor(np.asarray(y), dtype=GP_DTYPE, device=self.device)
        n, d = xt.shape
        e = yt.shape[1]
        x_std = xt.std(0).clamp_min(1e-6)
        y_std = yt.std(0).clamp_min(1e-6)
        if warm_start and self.log_ell is not None and self.log_ell.shape == (e, d):
            assert self.log_sf is not None and self.log_sn is not None
            init = torch.cat([self.log_ell, self.log_sf[:, None], self.log_sn[:, None]], 1)
        else:
            init = torch.cat(
                [
                    x_std.log()[None].expand(e, d),
                    y_std.log()[:, None],
                    (y_std / 10.0).log()[:, None],
                ],
                1,
            )
        theta = param = init.clone().requires_grad_(True)
        opt = lbfgs([theta], iterations, tolerance_grad=1e-6, tolerance_change=1e-10, history=50)

        def objective() -> Tensor:
            le, lsf, lsn = theta[:, :d], theta[:, d], theta[:, d + 1]
            nlml = neg_log_marginal_likelihood(xt, yt, le, lsf, lsn)
            return (nlml + hyper_penalty(le, lsf, lsn, x_std)).sum()

        best = [math.inf, init]

        def closure() -> Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            value = float(loss.detach())
            if math.isfinite(value) and value < best[0]:
                best[:] = [value, theta.detach().clone()]
            return loss

        try:
            opt.step(closure)
        except torch.linalg.LinAlgError:  # a line search stepped somewhere singular
            pass
        theta = best[1]  # the best point evaluated (L-BFGS may end on a worse trial step)
        self.log_ell, self.log_sf, self.log_sn = theta[:, :d], theta[:, d], theta[:, d + 1]
        self.x, self.y, self.z = xt, yt, inducing
        self._cache()
        with torch.no_grad():
            nlml = neg_log_marginal_likelihood(xt, yt, self.log_ell, self.log_sf, self.log_sn)
        basis = n if inducing is None else len(inducing)
        return GPFit(float(nlml.sum()), n, basis, int(opt.state[param].get("n_iter", 0)))

    def set_data(
        self,
        x: Tensor,
        y: Tensor,
        log_ell: Tensor,
        log_sf: Tensor,
        log_sn: Tensor,
        inducing: Tensor | None = None,
    ) -> None:
        """Install data, hyperparameters and (FITC) inducing inputs directly (tests, checkpoints)
        and cache the posterior."""
        self.x, self.y = x.to(GP_DTYPE), y.to(GP_DTYPE)
        self.z = None if inducing is None else inducing.to(GP_DTYPE)
        self.log_ell, self.log_sf, self.log_sn = (
            log_ell.to(GP_DTYPE),
            log_sf.to(GP_DTYPE),
            log_sn.to(GP_DTYPE),
        )
        self._cache()

    @property
    def basis(self) -> Tensor:
        """``[n, D]``: the points the posterior is expanded on (inducing inputs under FITC)."""
        assert self.x is not None
        return self.x if self.z is None else self.z

    def _cache(self) -> None:
        """``beta`` and ``iK`` such that mean ``= k(x*, basis) beta`` and latent variance
        ``= sf^2 - k(x*, basis) iK k(basis, x*)``: the full GP, or FITC (Snelson & Ghahramani
        2006; pilco-matlab ``gp1d.m``) with ``beta = Sigma K_mn Lam^-1 y`` and
        ``iK = K_mm^-1 - Sigma``, ``Sigma = (K_mm + K_mn Lam^-1 K_nm)^-1``,
        ``Lam = diag(K_nn - Q_nn) + sn^2 I``."""
        assert self.x is not None and self.y is not None and self.log_ell is not None
        assert self.log_sf is not None and self.log_sn is not None
        sn2 = (2.0 * self.log_sn).exp()
        if self.z is None:
            n = self.x.shape[0]
            k = se_ard(self.x, self.x, self.log_ell, self.log_sf)
            chol = _cholesky(k + sn2[:, None, None] * torch.eye(n, dtype=GP_DTYPE))
            self.iK = torch.cholesky_inverse(chol)
            self.beta = torch.cholesky_solve(self.y.T[:, :, None], chol)[..., 0]
            return
        m = self.z.shape[0]
        eye = torch.eye(m, dtype=GP_DTYPE)
        kmm = se_ard(self.z, self.z, self.log_ell, self.log_sf) + 1e-6 * eye  # gp1d's ridge
        lm = _cholesky(kmm)
        v = torch.linalg.solve_triangular(
            lm, se_ard(self.z, self.x, self.log_ell, self.log_sf), upper=False
        )
        lam = (2.0 * self.log_sf).exp()[:, None] - (v * v).sum(-2) + sn2[:, None]  # [E, N]
        vl = v / lam.sqrt()[:, None, :]
        la = _cholesky(eye + vl @ vl.transpose(-1, -2))  # A = I + V Lam^-1 V^T
        lm_inv = torch.linalg.solve_triangular(lm, eye.expand_as(lm), upper=False)
        t = torch.cholesky_solve(v @ (self.y.T / lam)[..., None], la)  # A^-1 V Lam^-1 y
        self.beta = (lm_inv.transpose(-1, -2) @ t)[..., 0]
        self.iK = lm_inv.transpose(-1, -2) @ (eye - torch.cholesky_inverse(la)) @ lm_inv

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, D] -> (mean [N, E], latent variance [N, E])`` at deterministic inputs."""
        assert self.fitted and self.x is not None and self.iK is not None
        assert self.log_ell is not None and self.log_sf is not None and self.beta is not None
        ks = se_ard(x.to(GP_DTYPE), self.basis, self.log_ell, self.log_sf)  # [E, N, n]
        mean = torch.einsum("ein,en->ie", ks, self.beta)
        var = (2.0 * self.log_sf).exp()[None] - ((ks @ self.iK) * ks).sum(-1).T
        return mean, var.clamp_min(0.0)

    def moments(self, m: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Moment matching of ``x ~ N(m [D], s [D, D])`` through the GPs: see :func:`gp_moments`."""
        assert self.fitted and self.x is not None and self.beta is not None
        assert self.log_ell is not None and self.log_sf is not None
        return gp_moments(self.basis, self.beta, self.log_ell, self.log_sf, m, s, iK=self.iK)

    def state_dict(self) -> dict[str, Tensor | None]:
        return {
            "x": self.x,
            "y": self.y,
            "z": self.z,
            "log_ell": self.log_ell,
            "log_sf": self.log_sf,
            "log_sn": self.log_sn,
        }

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        x, y = state["x"], state["y"]
        le, lsf, lsn = state["log_ell"], state["log_sf"], state["log_sn"]
        if x is None or y is None or le is None or lsf is None or lsn is None:
            self.__init__(self.device)  # type: ignore[misc]
            self.log_ell, self.log_sf, self.log_sn = le, lsf, lsn
            return
        self.set_data(x, y, le, lsf, lsn, state.get("z"))


# --------------------------------------------------------------------------- moment matching
def gp_moments(
    x: Tensor,
    beta: Tensor,
    log_ell: Tensor,
    log_sf: Tensor,
    m: Tensor,
    s: Tensor,
    iK: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of ``f(x*)`` for ``x* ~ N(m, s)`` under ``E`` SE-ARD GPs (PILCO's moment matching).

    ``x [n, D]`` training inputs, ``beta [E, n] = (K_a + sn_a^2 I)^-1 y_a``, ``log_ell [E, D]``,
    ``log_sf [E]``, ``m [D]``, ``s [D, D]``; ``iK [E, n, n]``: add the model uncertainty
    ``sf_a^2 - tr(iK_a Q_aa)`` to the variances (pilco-matlab ``gp0``; predictive variances are of
    the latent ``f``, without the noise), ``None``: moments of the posterior mean only (``gp2``).

    Returns ``(M [E], S [E, E], V [D, E])`` with ``V = s^-1 cov[x*, f(x*)]``. Thesis Eqs.
    (2.34)-(2.56): with ``nu_i = x_i - m``, ``Lam_a = diag(ell_a^2)``,

    - ``M_a = beta_a^T q_a``, ``q_ai = sf_a^2 |s Lam_a^-1 + I|^-1/2 exp(-nu_i^T (s + Lam_a)^-1 nu_i / 2)``;
    - ``V_a = (s + Lam_a)^-1 sum_i beta_ai q_ai nu_i``;
    - ``E[f_a f_b] = beta_a^T Q_ab beta_b`` with ``R = s (Lam_a^-1 + Lam_b^-1) + I``,
      ``z_ij = Lam_a^-1 nu_i + Lam_b^-1 nu_j`` and
      ``Q_ab,ij = k_a(x_i, m) k_b(x_j, m) exp(z_ij^T R^-1 s z_ij / 2) / sqrt|R|``.
    """
    e, d = log_ell.shape
    eye = torch.eye(d, dtype=m.dtype, device=m.device)
    nu = x - m  # [n, D]
    iell = (-log_ell).exp()  # [E, D]
    sf2 = (2.0 * log_sf).exp()  # [E]
    # ---- mean and V (gp0d.m step 2), B = L s L + I with L = Lam^-1/2
    inp = nu[None] * iell[:, None, :]  # [E, n, D]
    b_chol = torch.linalg.cholesky(s[None] * (iell[:, :, None] * iell[:, None, :]) + eye)
    t = inp @ torch.cholesky_inverse(b_chol)  # inp B^-1, [E, n, D]
    lb = torch.exp(-0.5 * (inp * t).sum(-1)) * beta  # [E, n]
    c = sf2 * torch.exp(-b_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1))  # sf^2 / sqrt|B|
    mean = c * lb.sum(-1)
    v = c * ((t * iell[:, None, :]) * lb[..., None]).sum(1).T  # [D, E]
    # ---- covariance (gp0d.m step 3), for the E(E+1)/2 pairs a <= b only
    if e == 1:  # a single output (PILCO's policy): no pair bookkeeping
        ia = ib = torch.zeros(1, dtype=torch.long, device=m.device)
    else:
        ia, ib = torch.triu_indices(e, e, device=m.device)
    logk = (2.0 * log_sf)[:, None] - 0.5 * (inp * inp).sum(-1)  # log k_a(x_i, m), [E, n]
    iell2 = iell * iell  # [E, D]
    zeta = nu[None] * iell2[:, None, :]  # Lam_a^-1 nu_i, [E, n, D]
    za_, zb_ = (zeta, zeta) if e == 1 else (zeta[ia], zeta[ib])  # [P, n, D]
    # R = s G^2 + I with G = diag(sqrt(iell2_a + iell2_b)); through the SPD A = G s G + I:
    # |R| = |A| and R^-1 s = G^-1 (I - A^-1) G^-1 (symmetric)
    g = (2.0 * iell2).sqrt() if e == 1 else (iell2[ia] + iell2[ib]).sqrt()  # [P, D]
    gg = g[:, :, None] * g[:, None, :]
    a_chol = torch.linalg.cholesky(s[None] * gg + eye)
    tm = (eye - torch.cholesky_inverse(a_chol)) / gg  # R^-1 s, [P, D, D]
    ta = za_ @ tm  # [P, n, D]
    tb = ta if e == 1 else zb_ @ tm
    # log Q_ij = log k_a,i + log k_b,j + (z_a,i + z_b,j)^T T (z_a,i + z_b,j) / 2 as one matmul:
    # [T z_a,i, log k_a,i + z_a,i^T T z_a,i / 2, 1] . [z_b,j, 1, log k_b,j + z_b,j^T T z_b,j / 2]
    va = (logk if e == 1 else logk[ia]) + 0.5 * (ta * za_).sum(-1)  # [P, n]
    vb = va if e == 1 else logk[ib] + 0.5 * (tb * zb_).sum(-1)
    ones = torch.ones_like(va)[..., None]
    left = torch.cat([ta, va[..., None], ones], -1)
    right = torch.cat([zb_, ones, vb[..., None]], -1)
    q = torch.exp(left @ right.transpose(-1, -2))  # Q_ab * sqrt|R|, [P, n, n]
    inv_sqrt_det_r = torch.exp(-a_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1))  # [P]
    beta_a, beta_b = (beta, beta) if e == 1 else (beta[ia], beta[ib])
    pair = inv_sqrt_det_r * ((q @ beta_b[..., None])[..., 0] * beta_a).sum(-1)  # [P]
    if e == 1:
        if iK is not None:
            pair = pair + sf2 - inv_sqrt_det_r * (iK * q).sum((-1, -2))
        emm = pair[:, None]
    else:
        if iK is not None:
            diag = (ia == ib).nonzero()[:, 0]  # the a == b pairs, in output order
            model_var = sf2 - inv_sqrt_det_r[diag] * (iK * q[diag]).sum((-1, -2))
            pair = pair.index_add(0, diag, model_var)  # (vmap has a batching rule for it)
        upper = torch.zeros(e, e, dtype=m.dtype, device=m.device).index_put((ia, ib), pair)
        emm = upper + upper.T - torch.diag(upper.diagonal())
    cov = emm - mean[:, None] * mean[None, :]
    cov = 0.5 * (cov + cov.T)
    return mean, cov, v


def trig_moments(
    m: Tensor,
    s: Tensor,
    idx: list[int] | tuple[int, ...],
    freq: Tensor,
    phase: Tensor,
    scale: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of the features ``g_r = scale_r sin(freq_r x[idx_r] + phase_r)``, ``x ~ N(m, s)``.

    ``m [D]``, ``s [D, D]``, ``idx``/``freq``/``phase``/``scale``: ``R`` features. Exact (the
    characteristic function of a Gaussian): with ``mu_r = freq_r m_r + phase_r`` and
    ``v_rs = freq_r freq_s s[idx_r, idx_s]``,

    - ``E[g_r] = scale_r exp(-v_rr / 2) sin(mu_r)``,
    - ``cov[g_r, g_s] = scale_r scale_s exp(-(v_rr + v_ss) / 2) / 2 *
      (expm1(v_rs) cos(mu_r - mu_s) - expm1(-v_rs) cos(mu_r + mu_s))``
      (pilco-matlab ``gSin``/``gTrig``; ``expm1`` keeps small variances accurate),
    - ``V = s^-1 cov[x, g] = E[dg/dx]`` (Stein's lemma): ``V[idx_r, r] = scale_r freq_r
      exp(-v_rr / 2) cos(mu_r)``.

    Returns ``(M [R], S [R, R], V [D, R])``.
    """
    ii, onehot = _feature_index(tuple(idx), m.shape[0], m.dtype, m.device)
    mu = freq * m[ii] + phase
    vv = (freq[:, None] * freq[None, :]) * s[ii[:, None], ii]
    decay = torch.exp(-0.5 * vv.diagonal())
    sd = scale * decay
    mean = sd * torch.sin(mu)
    cov = (0.5 * sd[:, None] * sd[None, :]) * (
        torch.expm1(vv) * torch.cos(mu[:, None] - mu[None, :])
        - torch.expm1(-vv) * torch.cos(mu[:, None] + mu[None, :])
    )
    return mean, cov, onehot * (sd * freq * torch.cos(mu))


@functools.lru_cache(maxsize=64)
def _feature_index(
    idx: tuple[int, ...], d: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """``idx`` as a tensor and its ``[D, R]`` one-hot (constants, cached)."""
    ii = torch.tensor(idx, dtype=torch.long, device=device)
    return ii, torch.nn.functional.one_hot(ii, d).to(dtype).T


@functools.lru_cache(maxsize=64)
def _trig_constants(
    kind: str, k: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """``(freq, phase)`` of the features of :func:`gtrig` (``[sin, cos]`` per angle, interleaved),
    :func:`gsin` and :func:`gsat` (``sin x`` then ``sin 3x`` for all dims), cached."""
    dt = dict(dtype=dtype, device=device)
    if kind == "trig":  # cos x = sin(x + pi/2)
        return torch.ones(2 * k, **dt), torch.tensor([0.0, math.pi / 2] * k, **dt)
    if kind == "sin":
        return torch.ones(k, **dt), torch.zeros(k, **dt)
    return torch.tensor([1.0] * k + [3.0] * k, **dt), torch.zeros(2 * k, **dt)


def gtrig(m: Tensor, s: Tensor, idx: list[int] | tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """``[sin x_i, cos x_i]`` for each ``i`` in ``idx`` (interleaved, as ``gTrig``): ``(M [2I],
    S [2I, 2I], V [D, 2I])``."""
    freq, phase = _trig_constants("trig", len(idx), m.dtype, m.device)
    pairs = tuple(i for i in idx for _ in range(2))
    return trig_moments(m, s, pairs, freq, phase, torch.ones_like(freq))


def gsin(
    m: Tensor, s: Tensor, idx: list[int] | tuple[int, ...], scale: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``scale_i sin(x_i)`` for ``i`` in ``idx`` (pilco-matlab ``gSin``)."""
    freq, phase = _trig_constants("sin", len(idx), m.dtype, m.device)
    e = torch.ones_like(freq) if scale is None else scale.to(m.dtype)
    return trig_moments(m, s, tuple(idx), freq, phase, e)


def gsat(
    m: Tensor, s: Tensor, idx: list[int] | tuple[int, ...], scale: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``scale_i (9 sin x_i + sin 3 x_i) / 8`` for ``i`` in ``idx`` (pilco-matlab ``gSat``, the
    squash of its cart-pole policy: flatter than ``sin`` near the bounds)."""
    k = len(idx)
    freq, phase = _trig_constants("sat", k, m.dtype, m.device)
    e = torch.ones(k, dtype=m.dtype, device=m.device) if scale is None else scale.to(m.dtype)
    sc = torch.cat([9.0 / 8.0 * e, e / 8.0])
    mf, sf, vf = trig_moments(m, s, tuple(idx) * 2, freq, phase, sc)
    # each output is the sum of its two features
    return mf.view(2, k).sum(0), sf.view(2, k, 2, k).sum((0, 2)), vf.view(-1, 2, k).sum(1)


def fill_in(
    m: Tensor, s: Tensor, idx: Tensor | None, out: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    """Joint ``N`` of ``[x, f(x[idx])]`` from ``x ~ N(m [D], s [D, D])`` and ``f``'s ``(M, S, V)``
    moments (``cov[x, f] = s[:, idx] V``: pilco-matlab ``fillIn``); ``idx=None``: all of ``x``."""
    mo, so, vo = out
    c = (s if idx is None else s[:, idx]) @ vo
    top = torch.cat([s, c], 1)
    bottom = torch.cat([c.T, so], 1)
    return torch.cat([m, mo]), torch.cat([top, bottom], 0)


def augment(m: Tensor, s: Tensor, angle_dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """``N(m [D], s)`` of a state -> ``N`` of ``[state, sin a_1, cos a_1, ...]`` for the angle
    dims ``a_i`` (:func:`gtrig`, with every cross-covariance)."""
    if not angle_dims:
        return m, s
    return fill_in(m, s, None, gtrig(m, s, angle_dims))


def augment_points(x: np.ndarray, angle_dims: tuple[int, ...]) -> np.ndarray:
    """``[N, D] -> [N, D + 2 len(angle_dims)]``: :func:`augment` at deterministic states."""
    cols = [x]
    for i in angle_dims:
        cols += [np.sin(x[:, i : i + 1]), np.cos(x[:, i : i + 1])]
    return np.concatenate(cols, 1)


def sat_value(x: Tensor) -> Tensor:
    """``(9 sin x + sin 3x) / 8`` at deterministic points (the squash :func:`gsat` propagates)."""
    return (9.0 * torch.sin(x) + torch.sin(3.0 * x)) / 8.0


def loss_sat(m: Tensor, s: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """``E[1 - exp(-(x - z)^T W (x - z) / 2)]`` for ``x ~ N(m [D], s [D, D])``, ``W [D, D]`` PSD
    (pilco-matlab ``lossSat``): ``1 - |I + s W|^-1/2 exp(-(m - z)^T W (I + s W)^-1 (m - z) / 2)``."""
    d = m.shape[0]
    eye = torch.eye(d, dtype=m.dtype, device=m.device)
    a = eye + s @ w
    diff = m - z
    isw = w @ torch.linalg.inv(a)  # W (I + s W)^-1
    quad = diff @ isw @ diff
    return 1.0 - torch.exp(-0.5 * quad) / torch.sqrt(torch.linalg.det(a))
