"""PILCO's GP model and moment matching (``algorithms/models/gp.py``) against Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms.models.gp import (
    GP_DTYPE,
    GPModel,
    gp_moments,
    gsat,
    gsin,
    gtrig,
    loss_sat,
    sat_value,
    se_ard,
)

MC = 400_000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_gaussian(d: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    m = torch.randn(d, generator=g, dtype=GP_DTYPE)
    a = scale * torch.randn(d, d, generator=g, dtype=GP_DTYPE)
    return m, a @ a.T + 1e-3 * torch.eye(d, dtype=GP_DTYPE)


def _samples(m: torch.Tensor, s: torch.Tensor, n: int = MC, seed: int = 1) -> torch.Tensor:
    chol = torch.linalg.cholesky(s)
    return m + torch.randn(n, m.shape[0], generator=_gen(seed), dtype=GP_DTYPE) @ chol.T


def _mc_moments(
    x: torch.Tensor, f: torch.Tensor, extra_var: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample mean, covariance (plus the mean of ``extra_var`` on the diagonal) and
    ``cov(x)^-1 cov(x, f)`` of samples ``x [N, D] -> f [N, E]``."""
    mean = f.mean(0)
    fc, xc = f - mean, x - x.mean(0)
    cov = fc.T @ fc / (len(f) - 1)
    if extra_var is not None:
        cov = cov + torch.diag(extra_var.mean(0))
    sx = xc.T @ xc / (len(x) - 1)
    v = torch.linalg.solve(sx, xc.T @ fc / (len(x) - 1))
    return mean, cov, v


def _toy_gp(n: int = 40, d: int = 3, e: int = 2, seed: int = 0) -> GPModel:
    g = _gen(seed)
    x = 1.5 * torch.randn(n, d, generator=g, dtype=GP_DTYPE)
    y = torch.stack([torch.sin(x[:, 0]) + 0.3 * x[:, 1], torch.cos(x[:, 1] * x[:, -1])], 1)[:, :e]
    gp = GPModel()
    gp.set_data(
        x,
        y,
        log_ell=torch.log(torch.tensor([[1.0, 1.5, 2.0], [2.0, 0.8, 1.2]], dtype=GP_DTYPE)[:e, :d]),
        log_sf=torch.log(torch.tensor([1.0, 0.7], dtype=GP_DTYPE)[:e]),
        log_sn=torch.log(torch.tensor([0.05, 0.1], dtype=GP_DTYPE)[:e]),
    )
    return gp


@pytest.mark.parametrize("scale", [0.1, 0.6])
def test_gp_moment_matching_matches_monte_carlo(scale: float) -> None:
    gp = _toy_gp()
    m, s = _random_gaussian(3, scale, seed=3)
    mean, cov, v = gp.moments(m, s)
    x = _samples(m, s)
    with torch.no_grad():
        mu, var = gp.predict(x)
    mc_mean, mc_cov, mc_v = _mc_moments(x, mu, var)
    tol = 4.0 * mc_cov.diagonal().sqrt().max() / math.sqrt(MC) + 1e-3
    torch.testing.assert_close(mean, mc_mean, atol=tol, rtol=0)
    torch.testing.assert_close(cov, mc_cov, atol=0.02 * mc_cov.abs().max() + 1e-4, rtol=0)
    torch.testing.assert_close(v, mc_v, atol=0.03 * mc_v.abs().max() + 1e-3, rtol=0)
    # without iK (gp2): the moments of the posterior mean alone
    mean2, cov2, _ = gp_moments(gp.x, gp.beta, gp.log_ell, gp.log_sf, m, s)  # type: ignore[arg-type]
    _, mc_cov2, _ = _mc_moments(x, mu)
    torch.testing.assert_close(mean2, mean)
    torch.testing.assert_close(cov2, mc_cov2, atol=0.02 * mc_cov2.abs().max() + 1e-4, rtol=0)


def test_gp_moments_reduce_to_the_posterior_at_a_point() -> None:
    gp = _toy_gp()
    m = torch.tensor([0.3, -0.2, 0.5], dtype=GP_DTYPE)
    mean, cov, _ = gp.moments(m, 1e-12 * torch.eye(3, dtype=GP_DTYPE))
    mu, var = gp.predict(m[None])
    torch.testing.assert_close(mean, mu[0], atol=1e-8, rtol=0)
    torch.testing.assert_close(cov, torch.diag(var[0]), atol=1e-7, rtol=0)


def test_gtrig_matches_monte_carlo() -> None:
    m, s = _random_gaussian(4, 0.5, seed=5)
    mean, cov, v = gtrig(m, s, [1, 3])
    x = _samples(m, s)
    f = torch.stack(
        [torch.sin(x[:, 1]), torch.cos(x[:, 1]), torch.sin(x[:, 3]), torch.cos(x[:, 3])], 1
    )
    mc_mean, mc_cov, mc_v = _mc_moments(x, f)
    torch.testing.assert_close(mean, mc_mean, atol=5e-3, rtol=0)
    torch.testing.assert_close(cov, mc_cov, atol=5e-3, rtol=0)
    torch.testing.assert_close(v, mc_v, atol=1e-2, rtol=0)


def test_gsin_and_gsat_match_monte_carlo() -> None:
    m, s = _random_gaussian(3, 0.7, seed=7)
    x = _samples(m, s)
    e = torch.tensor([2.0, 0.5], dtype=GP_DTYPE)
    for fn, ref in ((gsin, torch.sin), (gsat, sat_value)):
        mean, cov, v = fn(m, s, [0, 2], e)
        f = e * ref(x[:, [0, 2]])
        mc_mean, mc_cov, mc_v = _mc_moments(x, f)
        torch.testing.assert_close(mean, mc_mean, atol=1e-2, rtol=0)
        torch.testing.assert_close(cov, mc_cov, atol=1e-2, rtol=0)
        torch.testing.assert_close(v, mc_v, atol=2e-2, rtol=0)


def test_saturating_cost_matches_monte_carlo() -> None:
    m, s = _random_gaussian(3, 0.4, seed=9)
    z = torch.tensor([0.2, -0.1, 0.4], dtype=GP_DTYPE)
    a = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.5]], dtype=GP_DTYPE)
    w = a.T @ a  # PSD and singular, like PILCO's cart-pole weight
    x = _samples(m, s)
    diff = x - z
    mc = (1.0 - torch.exp(-0.5 * ((diff @ w) * diff).sum(-1))).mean()
    torch.testing.assert_close(loss_sat(m, s, z, w), mc, atol=3e-3, rtol=0)


def test_marginal_likelihood_recovers_a_known_lengthscale() -> None:
    """Samples of a GP with ell = (0.5, 3.0): the fit lands within ~40% of each."""
    rng = np.random.default_rng(0)
    n = 200
    x = rng.uniform(-3, 3, size=(n, 2))
    true_ell = torch.log(torch.tensor([[0.5, 3.0]], dtype=GP_DTYPE))
    k = se_ard(torch.as_tensor(x), torch.as_tensor(x), true_ell, torch.zeros(1, dtype=GP_DTYPE))[0]
    k = k + 1e-2**2 * torch.eye(n, dtype=GP_DTYPE)
    y = torch.linalg.cholesky(k) @ torch.as_tensor(rng.standard_normal(n))
    gp = GPModel()
    fit = gp.fit(x, y.numpy()[:, None], iterations=200)
    ell = gp.log_ell.exp()[0]  # type: ignore[union-attr]
    assert 0.3 < float(ell[0]) < 0.7, ell
    assert 1.8 < float(ell[1]) < 4.5, ell
    assert float(gp.log_sn.exp()[0]) < 0.05  # type: ignore[union-attr]
    assert fit.points == fit.basis == n and fit.iterations > 0


def test_subset_of_data_is_seeded() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    y = np.sin(x[:, :1])
    a, b = GPModel(), GPModel()
    fa = a.fit(x, y, iterations=5, max_points=30, sparse="sod", rng=np.random.default_rng(3))
    b.fit(x, y, iterations=5, max_points=30, sparse="sod", rng=np.random.default_rng(3))
    assert fa.points == fa.basis == 30
    torch.testing.assert_close(a.x, b.x)
    with pytest.raises(ValueError, match="seeded rng"):
        GPModel().fit(x, y, max_points=30)


def test_fitc_with_all_points_inducing_is_the_full_gp() -> None:
    gp = _toy_gp()
    fitc = GPModel()
    fitc.set_data(gp.x, gp.y, gp.log_ell, gp.log_sf, gp.log_sn, inducing=gp.x)  # type: ignore[arg-type]
    xs = torch.randn(50, 3, generator=_gen(4), dtype=GP_DTYPE)
    for a, b in zip(fitc.predict(xs), gp.predict(xs), strict=True):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=0)


def test_fitc_approximates_the_full_gp_and_moment_matches_itself() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(300, 2))
    y = np.stack([np.sin(2 * x[:, 0]) * np.cos(x[:, 1]), x[:, 0] * x[:, 1]], 1)
    y = y + 0.01 * rng.standard_normal(y.shape)
    full, fitc = GPModel(), GPModel()
    full.fit(x, y, iterations=100)
    fit = fitc.fit(x, y, iterations=100, max_points=80, sparse="fitc", rng=np.random.default_rng(0))
    assert fit.points == 300 and fit.basis == 80 and fitc.basis.shape == (80, 2)
    xs = torch.as_tensor(rng.uniform(-1.5, 1.5, size=(200, 2)))
    err = (fitc.predict(xs)[0] - full.predict(xs)[0]).abs().max()
    assert float(err) < 0.05, err
    m, s = (
        torch.tensor([0.3, -0.4], dtype=GP_DTYPE),
        torch.diag(torch.tensor([0.2, 0.3], dtype=GP_DTYPE)),
    )
    mean, cov, v = fitc.moments(m, s)
    samples = _samples(m, s, n=200_000)
    mu, var = fitc.predict(samples)
    mc_mean, mc_cov, mc_v = _mc_moments(samples, mu, var)
    torch.testing.assert_close(mean, mc_mean, atol=5e-3, rtol=0)
    torch.testing.assert_close(cov, mc_cov, atol=0.02 * mc_cov.abs().max() + 1e-4, rtol=0)
    torch.testing.assert_close(v, mc_v, atol=0.03 * mc_v.abs().max() + 1e-3, rtol=0)


def test_moment_matching_gradients_pass_gradcheck() -> None:
    gp = _toy_gp(n=6, d=2, e=2)
    m0, s0 = _random_gaussian(2, 0.4, seed=11)
    a0 = torch.linalg.cholesky(s0)

    def through_gp(
        m: torch.Tensor, a: torch.Tensor, beta: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        s = a @ a.T
        return gp_moments(gp.x, beta, gp.log_ell, gp.log_sf, m, s, iK=gp.iK)  # type: ignore[arg-type]

    def chain(m: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = a @ a.T
        mt, st, vt = gtrig(m, s, [1])
        mu, su, vu = gsat(mt, st, [0], torch.tensor([2.0], dtype=GP_DTYPE))
        z = torch.tensor([0.1, -0.3], dtype=GP_DTYPE)
        return mu, su, vt @ vu, loss_sat(m, s, z, torch.eye(2, dtype=GP_DTYPE))

    args = (m0.clone().requires_grad_(), a0.clone().requires_grad_())
    beta = gp.beta.clone().requires_grad_()  # type: ignore[union-attr]
    assert torch.autograd.gradcheck(through_gp, (*args, beta))
    assert torch.autograd.gradcheck(chain, args)
