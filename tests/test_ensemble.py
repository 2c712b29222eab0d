"""The probabilistic ensemble: shapes, propagation modes, gradients, fitting, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms.models.ensemble import EnsembleStep, ProbabilisticEnsemble
from algorithms.models.ensemble_config import MBPO_WEIGHT_DECAYS, EnsembleConfig
from algorithms.models.normalizer import Normalizer

OBS, ACT = 3, 2


def small(**kw) -> EnsembleConfig:
    base = dict(members=4, elites=3, hidden=16, layers=2, batch_size=64)
    return EnsembleConfig(**{**base, **kw})


def labelled_model(members: int = 4, elites: int = 4) -> ProbabilisticEnsemble:
    """Member ``k`` predicts the state change ``k`` on every dimension (identity normalizers)."""
    torch.manual_seed(0)
    m = ProbabilisticEnsemble(OBS, ACT, small(members=members, elites=elites))
    with torch.no_grad():
        m.net.out.weight.zero_()
        m.net.out.bias.zero_()
        m.net.out.bias[:, 0, :OBS] = torch.arange(members, dtype=torch.float32).view(-1, 1)
    return m


def used_member(m: ProbabilisticEnsemble, obs: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    return (nxt - obs)[:, 0].round().long()


@pytest.mark.parametrize("mode", ["ts1", "tsinf", "mean"])
@pytest.mark.parametrize("sample", [False, True])
@pytest.mark.parametrize("learn_reward", [False, True])
def test_step_shapes(mode: str, sample: bool, learn_reward: bool) -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small(learn_reward=learn_reward))
    g = torch.Generator().manual_seed(0)
    for b in (1, 7, 12):  # not divisible by the 3 elites, divisible, single row
        out = EnsembleStep(m, mode, sample=sample, generator=g)(
            torch.randn(b, OBS), torch.randn(b, ACT)
        )
        assert out.next_obs.shape == (b, OBS)
        assert (out.reward is None) != learn_reward
        if learn_reward:
            assert out.reward.shape == (b,)
        assert torch.isfinite(out.next_obs).all()


def test_forward_shapes_and_member_subset() -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small())
    x = torch.randn(10, OBS + ACT)
    mean, logvar = m(x)
    assert mean.shape == logvar.shape == (4, 10, OBS)
    sub_mean, _ = m(x, torch.tensor([2, 0]))
    torch.testing.assert_close(sub_mean, mean[[2, 0]])


def test_tsinf_keeps_member_per_particle_and_balances() -> None:
    m = labelled_model()
    g = torch.Generator().manual_seed(1)
    step = EnsembleStep(m, "tsinf", sample=False, generator=g)
    obs = torch.zeros(40, OBS)
    first = used_member(m, obs, step(obs, torch.zeros(40, ACT)).next_obs)
    for _ in range(3):
        again = used_member(m, obs, step(obs, torch.zeros(40, ACT)).next_obs)
        assert torch.equal(first, again)
    assert torch.bincount(first, minlength=4).tolist() == [10, 10, 10, 10]
    assert len(set(first[:8].tolist())) > 1  # rows are not assigned in blocks


def test_ts1_redraws_members_every_step() -> None:
    m = labelled_model()
    g = torch.Generator().manual_seed(2)
    step = EnsembleStep(m, "ts1", sample=False, generator=g)
    obs = torch.zeros(40, OBS)
    draws = [used_member(m, obs, step(obs, torch.zeros(40, ACT)).next_obs) for _ in range(3)]
    assert not torch.equal(draws[0], draws[1])
    for d in draws:
        assert torch.bincount(d, minlength=4).tolist() == [10, 10, 10, 10]


def test_mean_mode_and_elites() -> None:
    m = labelled_model()
    obs = torch.zeros(5, OBS)
    out = m.step(obs, torch.zeros(5, ACT), mode="mean", sample=False)
    torch.testing.assert_close(out.next_obs, torch.full((5, OBS), 1.5))  # mean of 0..3
    m.elite_idx = torch.tensor([3, 1])  # only members 3 and 1 predict
    for mode in ("ts1", "tsinf"):
        step = EnsembleStep(m, mode, sample=False, generator=torch.Generator().manual_seed(0))
        used = used_member(m, obs, step(obs, torch.zeros(5, ACT)).next_obs)
        assert set(used.tolist()) <= {1, 3}
    out = m.step(obs, torch.zeros(5, ACT), mode="mean", sample=False)
    torch.testing.assert_close(out.next_obs, torch.full((5, OBS), 2.0))


def test_sampling_uses_generator() -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small())
    obs, act = torch.randn(6, OBS), torch.randn(6, ACT)

    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return m.step(obs, act, mode="ts1", sample=True, generator=g).next_obs

    torch.testing.assert_close(draw(0), draw(0))
    assert not torch.allclose(draw(0), draw(1))


@pytest.mark.parametrize("mode", ["ts1", "tsinf", "mean"])
def test_gradients_flow_through_predict(mode: str) -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small())
    obs = torch.randn(8, OBS, requires_grad=True)
    act = torch.randn(8, ACT, requires_grad=True)
    step = EnsembleStep(m, mode, sample=True, generator=torch.Generator().manual_seed(0))
    step(obs, act).next_obs.square().sum().backward()
    assert obs.grad is not None and obs.grad.abs().sum() > 0
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert m.net.hidden[0].weight.grad is not None


def test_logvar_soft_bounds() -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small())
    with torch.no_grad():
        m.net.out.weight.mul_(1e4)  # push the raw log-variance far out of range
    _, logvar = m(1e3 * torch.randn(50, OBS + ACT))
    assert (logvar <= m.max_logvar + 1e-4).all()
    assert (logvar >= m.min_logvar - 1e-4).all()
    assert logvar.max() > m.max_logvar.max() - 0.1  # saturates at the bounds
    assert logvar.min() < m.min_logvar.min() + 0.1


def test_loss_has_bound_penalty_and_optimizer_applies_l2() -> None:
    cfg = EnsembleConfig(members=2, elites=1, hidden=8, layers=4)
    m = ProbabilisticEnsemble(OBS, ACT, cfg)
    assert cfg.decays() == MBPO_WEIGHT_DECAYS
    x, y = torch.randn(2, 5, OBS + ACT), torch.randn(2, 5, OBS)
    total, _ = m.loss(x, y)
    mean, logvar = m(x)
    nll = ((mean - y) ** 2 * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
    penalty = 0.01 * (m.max_logvar.sum() - m.min_logvar.sum())
    torch.testing.assert_close(total, nll + penalty)
    # Adam's grouped weight_decay == adding MBPO's sum_l wd_l ||W_l||^2 / 2 to the loss
    ref = ProbabilisticEnsemble(OBS, ACT, cfg)
    ref.load_state_dict(m.state_dict())
    plain = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    m.optim.zero_grad()
    m.loss(x, y)[0].backward()
    m.optim.step()
    plain.zero_grad()
    (ref.loss(x, y)[0] + ref.l2_penalty()).backward()
    plain.step()
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def linear_data(n: int, rng: np.random.Generator):
    a_mat = np.array([[0.9, 0.1, 0.0], [0.0, 0.95, 0.1], [0.05, 0.0, 0.9]])
    b_mat = np.array([[0.1, 0.0], [0.0, 0.2], [0.3, -0.1]])
    obs = rng.normal(size=(n, OBS))
    act = rng.uniform(-1, 1, size=(n, ACT))
    nxt = obs @ a_mat.T + act @ b_mat.T + 0.01 * rng.normal(size=(n, OBS))
    return obs.astype(np.float32), act.astype(np.float32), nxt.astype(np.float32)


def test_fit_learns_linear_dynamics_and_picks_elites() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = ProbabilisticEnsemble(OBS, ACT, small(hidden=32, max_epochs=60))
    obs, act, nxt = linear_data(600, rng)
    test = linear_data(300, rng)
    m.in_norm.fit(torch.as_tensor(np.concatenate([obs, act], 1)))
    m.out_norm.fit(torch.as_tensor(nxt - obs))
    before = m.evaluate(*test)
    res = m.fit(obs, act, nxt, rng=rng)
    after = m.evaluate(*test)
    assert res.n_holdout == 120 and res.n_train == 480
    assert 1 <= res.epochs <= 60
    assert (after < 0.05 * before).all(), (before, after)
    assert res.holdout_mse < 0.05
    assert m.fitted
    # elites are the members with the lowest holdout MSE
    order = np.argsort(res.member_holdout_mse)[:3]
    assert sorted(res.elites) == sorted(order.tolist()) == sorted(m.elites)
    # one-step predictions of the fitted model are accurate in raw units
    o, a, n = (torch.as_tensor(v) for v in test)
    pred = m.step(o, a, mode="mean", sample=False).next_obs
    assert (pred - n).square().mean() < 1e-3


def test_fit_early_stops_and_learns_reward() -> None:
    rng = np.random.default_rng(1)
    m = ProbabilisticEnsemble(OBS, ACT, small(learn_reward=True, patience=2))
    obs, act, nxt = linear_data(200, rng)
    rew = obs.sum(1)
    res = m.fit(obs, act, nxt, rew, rng=rng)
    assert res.epochs < 200  # early stopping ended it (no max_epochs)
    out = m.step(torch.as_tensor(obs[:5]), torch.as_tensor(act[:5]), mode="mean", sample=False)
    assert out.reward is not None and out.reward.shape == (5,)
    with pytest.raises(ValueError, match="reward"):
        m.fit(obs, act, nxt, rng=rng)


def test_fit_stops_after_max_batches() -> None:
    """``max_batches``: a fixed number of minibatch steps (MVE's rate per env step), the last
    epoch partial; early stopping and ``max_epochs`` still end it sooner."""
    obs, act, nxt = linear_data(200, np.random.default_rng(3))  # 160 train rows: 3 batches of 64
    m = ProbabilisticEnsemble(OBS, ACT, small(patience=1000, batch_size=64))
    res = m.fit(obs, act, nxt, rng=np.random.default_rng(0), max_batches=7)
    assert (res.batches, res.epochs) == (7, 3) and math.isfinite(res.train_loss)
    res = m.fit(obs, act, nxt, rng=np.random.default_rng(0), max_batches=7, max_epochs=1)
    assert (res.batches, res.epochs) == (3, 1)
    uncapped = ProbabilisticEnsemble(OBS, ACT, small(max_epochs=4, batch_size=64))
    assert uncapped.fit(obs, act, nxt, rng=np.random.default_rng(0)).batches == 12


def test_fit_is_reproducible_from_the_rng() -> None:
    obs, act, nxt = linear_data(200, np.random.default_rng(3))

    def run() -> tuple:
        torch.manual_seed(0)
        m = ProbabilisticEnsemble(OBS, ACT, small(max_epochs=3))
        return m.fit(obs, act, nxt, rng=np.random.default_rng(5)).member_holdout_mse

    assert run() == run()


def test_normalizer_roundtrip_and_constant_features() -> None:
    norm = Normalizer(3)
    x = torch.randn(100, 3) * torch.tensor([1.0, 10.0, 0.0]) + 5
    norm.fit(x)
    z = norm(x)
    torch.testing.assert_close(z[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    assert norm.std[2] == 1.0  # constant feature: std -> 1, not 0
    torch.testing.assert_close(norm.denormalize(z), x)


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="weight_decays"):
        EnsembleConfig(layers=3, weight_decays=(1e-4,) * 5)
    with pytest.raises(ValueError, match="elites"):
        EnsembleConfig(members=3, elites=4)
    assert len(EnsembleConfig(layers=2).decays()) == 3


def test_no_grad_weight_cache_tracks_weight_updates() -> None:
    m = ProbabilisticEnsemble(OBS, ACT, small())
    m.elite_idx = torch.tensor([2, 0, 3])
    obs, act = torch.randn(9, OBS), torch.randn(9, ACT)
    with torch.no_grad():
        before = m.step(obs, act, mode="mean", sample=False).next_obs
        m.net.hidden[0].weight.mul_(2.0)  # an in-place update, like an optimizer step
        after = m.step(obs, act, mode="mean", sample=False).next_obs
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, m.step(obs, act, mode="mean", sample=False).next_obs)
    m.elite_idx = torch.tensor([1, 0, 3])  # a new elite set is honoured too
    with torch.no_grad():
        torch.testing.assert_close(
            m.step(obs, act, mode="mean", sample=False).next_obs,
            m.step(obs, act, mode="mean", sample=False).next_obs,
        )
        fresh = m.step(obs, act, mode="mean", sample=False).next_obs
    torch.testing.assert_close(fresh, m.step(obs, act, mode="mean", sample=False).next_obs)


def test_bf16_autocast_fits_as_well_as_fp32_and_returns_float32() -> None:
    obs, act, nxt = linear_data(600, np.random.default_rng(0))
    test = linear_data(300, np.random.default_rng(1))
    mse = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        m = ProbabilisticEnsemble(OBS, ACT, small(hidden=32, max_epochs=40, bf16=bf16))
        res = m.fit(obs, act, nxt, rng=np.random.default_rng(2))
        mse[bf16] = res.holdout_mse
        assert float(m.evaluate(*test)[m.elite_idx].mean()) < 2 * res.holdout_mse + 1e-3
        # weights and optimizer state stay fp32
        assert all(p.dtype == torch.float32 for p in m.parameters())
        assert all(
            v.dtype == torch.float32
            for s in m.optim.state.values()
            for v in s.values()
            if torch.is_tensor(v) and v.is_floating_point()
        )
        o = torch.as_tensor(test[0][:10]).requires_grad_(True)
        a = torch.as_tensor(test[1][:10])
        for mode in ("ts1", "mean"):
            out = m.step(o, a, mode=mode)
            assert out.next_obs.dtype == torch.float32
        out.next_obs.sum().backward()  # gradients flow through the autocast region
        assert o.grad is not None and o.grad.dtype == torch.float32
        with torch.no_grad():  # the cached (gathered) weights path
            out = EnsembleStep(m, "tsinf")(o, a)
        assert out.next_obs.dtype == torch.float32
        mean, logvar = m(m.in_norm(torch.cat([o, a], -1)))
        assert mean.dtype == logvar.dtype == torch.float32
    assert mse[False] < 0.05
    assert mse[True] < 2 * mse[False], mse


def test_step_members_keeps_every_elite_apart() -> None:
    m = labelled_model()
    m.elite_idx = torch.tensor([3, 1])
    obs = torch.zeros(5, OBS)
    out = m.step_members(obs, torch.zeros(5, ACT), sample=False)  # a shared batch
    assert out.next_obs.shape == (2, 5, OBS) and out.reward is None
    # elite k is member elites[k]: member 3 then member 1
    assert (out.next_obs[:, :, 0] == torch.tensor([[3.0], [1.0]])).all()
    # one batch per elite: each continues its own states
    again = m.step_members(out.next_obs, torch.zeros(2, 5, ACT), sample=False)
    assert (again.next_obs[:, :, 0] == torch.tensor([[6.0], [2.0]])).all()
    with pytest.raises(ValueError, match=r"one batch per elite \(\[2, B"):
        m.step_members(torch.zeros(3, 5, OBS), torch.zeros(3, 5, ACT))


def test_step_members_matches_each_members_own_prediction() -> None:
    torch.manual_seed(1)
    m = ProbabilisticEnsemble(OBS, ACT, small(learn_reward=True))
    obs, act = torch.randn(6, OBS), torch.randn(6, ACT)
    out = m.step_members(obs, act, sample=False)
    assert out.reward is not None and out.reward.shape == (3, 6)
    for k, member in enumerate(m.elites):  # the loop is the test's reference, not the code's
        m_k = torch.tensor([member])
        x = m.in_norm(torch.cat([m.features(obs), act], dim=-1))
        mean, _ = m.forward(x, m_k)
        y = m.out_norm.denormalize(mean[0])
        torch.testing.assert_close(out.next_obs[k], obs + y[:, :OBS])
        torch.testing.assert_close(out.reward[k], y[:, OBS])
    # sampling draws from the generator: the same seed, the same draw
    a = m.step_members(obs, act, generator=torch.Generator().manual_seed(3))
    b = m.step_members(obs, act, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.next_obs, b.next_obs)
    assert not torch.equal(a.next_obs, out.next_obs)


def test_learned_model_caps_refits_at_a_rate_per_env_step() -> None:
    """``fit_batches_per_step``: the first fit (end of the random phase) early-stops as MBPO's,
    every refit after it takes at most ``rate x steps since the previous fit`` minibatches."""
    from algorithms.api import RunContext, Transition
    from algorithms.models.learned import LearnedModel, LearnedModelConfig
    from envs import TASKS

    task = TASKS["pendulum"].resolve()
    cfg = LearnedModelConfig(
        members=3, elites=2, hidden=16, layers=2, batch_size=32, train_every=40,
        fit_batches_per_step=0.25, patience=1000, max_epochs=3,
    )  # fmt: skip
    lm = LearnedModel(task, cfg, RunContext.from_seed(0), buffer_size=1000,
                      initial_random_steps=200, report="update")  # fmt: skip
    rng = np.random.default_rng(0)
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    fits = []
    for _ in range(280):
        a = rng.uniform(task.act_low, task.act_high).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        lm.observe(Transition(obs, a, float(r), nxt, bool(term), bool(trunc)))
        if lm.update():
            fits.append(lm.last_fit)
        obs = nxt if not (term or trunc) else env.reset()[0]
    # 200 rows: 160 train, 5 batches per epoch; first fit uncapped (max_epochs 3); then
    # 0.25 x 40 = 10 batches per refit (the data have grown to 240 and 280 rows: 6 and 7 per epoch)
    assert [f.batches for f in fits] == [15, 10, 10]
    assert [f.epochs for f in fits] == [3, 2, 2]
