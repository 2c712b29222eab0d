"""TD-MPC2's pieces against hand-computed values and their reference definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms import ConfigError, RunContext, Transition
from algorithms.api import apply_overrides
from algorithms.models.layers import EnsembleNormedMLP, SimNorm
from algorithms.models.twohot import TwoHot, symexp, symlog
from algorithms.models.world_model import RunningScale, WorldModel, WorldModelShape
from algorithms.planners.models import LatentModel
from algorithms.replay.sequence import SequenceReplay
from algorithms.tdmpc2 import TDMPC2Agent, TDMPC2Config
from envs import TASKS


def test_symlog_symexp_invert_each_other():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.25, 7.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)
    assert float(symlog(torch.tensor(math.e - 1))) == pytest.approx(1.0)


def test_two_hot_targets_by_hand():
    th = TwoHot(bins=5, vmin=-2.0, vmax=2.0)  # support -2, -1, 0, 1, 2 (symlog space)
    x = symexp(torch.tensor([0.25, -2.0, 2.0, 5.0]))  # 5.0 clips to the top
    enc = th.encode(x)
    torch.testing.assert_close(enc[0], torch.tensor([0.0, 0.0, 0.75, 0.25, 0.0]))
    torch.testing.assert_close(enc[1], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(enc[2], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(enc[3], enc[2])


def test_two_hot_decodes_its_own_targets_and_ce_is_smallest_there():
    th = TwoHot()
    x = torch.tensor([-123.0, -1.0, 0.0, 0.3, 42.0])
    logits = torch.log(th.encode(x).clamp_min(1e-30))
    torch.testing.assert_close(th.decode(logits), x, rtol=1e-4, atol=1e-5)
    ce_at = th.cross_entropy(logits, x)
    ce_off = th.cross_entropy(logits, x + 5.0)
    assert bool((ce_at < ce_off).all())


def test_simnorm_is_a_softmax_per_group():
    x = torch.randn(3, 16)
    y = SimNorm(8)(x)
    torch.testing.assert_close(y.view(3, 2, 8).sum(-1), torch.ones(3, 2))
    torch.testing.assert_close(y[:, :8], torch.softmax(x[:, :8], -1))
    torch.testing.assert_close(y[:, 8:], torch.softmax(x[:, 8:], -1))


def test_simnorm_transposed_softmax_matches_the_plain_one_with_its_gradient():
    """SimNorm's softmax over the transposed groups (fast on the CPU) against the plain one over
    the last dimension, values and input gradients, batch dimensions kept."""
    x = (3 * torch.randn(2, 5, 32)).requires_grad_()
    w = torch.randn(2, 5, 32)
    (SimNorm(8)(x) * w).sum().backward()
    fast = x.grad.clone()
    x.grad = None
    plain = torch.softmax(x.unflatten(-1, (4, 8)), -1).flatten(-2)
    (plain * w).sum().backward()
    torch.testing.assert_close(SimNorm(8)(x), plain)
    torch.testing.assert_close(fast, x.grad)


def test_ensemble_normed_mlp_is_each_member_on_its_own():
    torch.manual_seed(0)
    net = EnsembleNormedMLP(3, 5, [7, 7], 4).eval()
    x = torch.randn(6, 5)
    out = net(x)
    for e in range(3):
        h = x
        for i, layer in enumerate(net.hidden):
            h = h @ layer.weight[e] + layer.bias[e]
            h = torch.nn.functional.layer_norm(h, (h.shape[-1],))
            h = torch.nn.functional.mish(h * net.ln_weight[i][e] + net.ln_bias[i][e])
        torch.testing.assert_close(out[e], h @ net.out.weight[e] + net.out.bias[e])


def test_ensemble_dropout_uses_the_given_generator():
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        net = EnsembleNormedMLP(
            2, 4, [8], 3, dropout=0.5, generator=torch.Generator().manual_seed(seed)
        )
        torch.manual_seed(99)  # the global generator must not matter
        return net.train()(torch.ones(5, 4))

    torch.testing.assert_close(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@pytest.mark.parametrize("bf16", [False, True])
def test_a_subset_of_heads_equals_those_heads_of_the_full_ensemble(bf16):
    """Planning and targets compute only the two drawn Q heads: the values are the full
    ensemble's, in fp32 and under bf16 autocast. Equal to the last bit on the suite's shapes
    (the tdmpc2 fingerprint checks that); on odd ones (here 37 rows of 11 outputs) the BLAS may
    take another kernel path for a smaller batch of products, a last-bit difference."""
    torch.manual_seed(0)
    net = EnsembleNormedMLP(5, 9, [32, 32], 11, dropout=0.01).eval()
    for p in net.parameters():
        p.data.normal_(0.0, 0.3)
    x = torch.randn(37, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for heads in ([3, 1], [0, 4], [2]):
            idx = torch.tensor(heads)
            sub, full = net(x, idx), net(x).index_select(0, idx)
            torch.testing.assert_close(sub, full, rtol=1e-6, atol=1e-6)
            assert sub.shape == (len(heads), 37, 11)
    with pytest.raises(ValueError, match="dropout"):
        net.train()(x, torch.tensor([0, 1]))


def test_q_value_draws_the_same_heads_with_and_without_dropout():
    """With dropout active ``q_value`` computes every head (the masks as the reference draws
    them); without, only the two drawn: the same generator draws, the same value in eval mode."""
    m = _model(num_q=5)
    for p in m._Qs.parameters():
        p.data.normal_(0.0, 0.3)
    z, a = m.encode(torch.randn(6, 3)), torch.randn(6, 2)
    m.generator.manual_seed(7)
    sub = m.q_value(z, a, reduce="avg")
    m.generator.manual_seed(7)
    idx = torch.randperm(5, generator=m.generator)[:2]
    full = m.twohot.decode(m.Q(z, a).index_select(0, idx)).unsqueeze(-1).mean(0)
    torch.testing.assert_close(sub, full, rtol=1e-6, atol=1e-6)
    m.train()
    before = m.generator.get_state()
    m.q_value(z, a, reduce="avg")  # every head's dropout mask drawn after the two indices
    assert not torch.equal(m.generator.get_state(), before)


def _model(episodic: bool = False, num_q: int = 2) -> WorldModel:
    shape = WorldModelShape(
        obs_dim=3, act_dim=2, enc_dim=16, mlp_dim=16, latent_dim=8, num_enc_layers=2,
        num_q=num_q, episodic=episodic,
    )  # fmt: skip
    return WorldModel(shape, TwoHot(), torch.Generator().manual_seed(0))


def test_world_model_starts_with_zero_reward_and_value():
    m = _model(num_q=5)
    z = m.encode(torch.randn(4, 3))
    a = torch.zeros(4, 2)
    assert m.twohot.decode(m.reward(z, a)).abs().max() < 1e-6
    assert m.Q(z, a).shape == (5, 4, 101)
    assert m.q_value(z, a, reduce="min").abs().max() < 1e-6


def test_policy_prior_entropy_is_the_action_dim_scaled_gaussian_term():
    m = _model()
    z = m.encode(torch.randn(64, 3))
    gen_state = m.generator.get_state()
    a, info = m.pi(z)
    m.generator.set_state(gen_state)
    eps = torch.randn(a.shape, generator=m.generator)
    gauss = (-0.5 * eps**2 - info["log_std"] - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
    torch.testing.assert_close(info["scaled_entropy"], -2 * gauss)
    assert a.abs().max() <= 1


def test_running_scale_tracks_the_5_95_percentile_range():
    s = RunningScale(tau=1.0)
    s.update(torch.arange(101.0).reshape(-1, 1))
    assert float(s.value) == pytest.approx(90.0)
    s.update(torch.zeros(10, 1))  # a range below 1 is floored at 1
    assert float(s.value) == 1.0


def test_latent_model_value_by_hand():
    torch.manual_seed(0)
    m = _model().eval()
    lm = LatentModel(m, gamma=0.9, device="cpu")
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    actions = torch.rand(5, 3, 2) * 2 - 1
    # a non-zero reward head so that the sum is not trivial
    torch.nn.init.normal_(m._reward[-1].weight, std=0.5)
    gen_state = m.generator.get_state()
    got = lm.objective(obs)(actions)
    m.generator.set_state(gen_state)
    z = m.encode(torch.as_tensor(obs).reshape(1, -1)).expand(5, -1)
    want = torch.zeros(5)
    for t in range(3):
        want += 0.9**t * m.twohot.decode(m.reward(z, actions[:, t]))
        z = m.next(z, actions[:, t])
    a, _ = m.pi(z)
    want += 0.9**3 * m.twohot.decode(m.Q(z, a)).mean(0)
    torch.testing.assert_close(got, want)


def test_sample_full_gives_windows_without_padding():
    r = SequenceReplay(100, 1, 1)
    for ep_len in (5, 2, 7):
        for i in range(ep_len):
            r.add(
                Transition(np.zeros(1), np.zeros(1), float(i), np.zeros(1), False, i == ep_len - 1)
            )
    starts = r.full_starts(3)
    assert starts.tolist() == [0, 1, 2, 7, 8, 9, 10, 11]
    b = r.sample_full(50, 3, generator=np.random.default_rng(0))
    assert float(b.mask.min()) == 1.0
    torch.testing.assert_close(b.reward[:, 1] - b.reward[:, 0], torch.ones(50))


def test_resolved_config_follows_the_reference_heuristics():
    pend = TASKS["pendulum"].resolve()  # 200-step episodes
    cfg = TDMPC2Agent.resolve_config(pend, TDMPC2Config())
    assert (cfg.enc_dim, cfg.mlp_dim, cfg.latent_dim, cfg.num_q) == (256, 384, 128, 2)
    assert cfg.seed_steps == 1000 and cfg.iterations == 6
    assert cfg.discount == pytest.approx(0.975)  # (40 - 1) / 40
    big = TDMPC2Agent.resolve_config(pend, apply_overrides(TDMPC2Config(), {"model_size": 5}))
    assert (big.latent_dim, big.mlp_dim, big.num_q) == (512, 512, 5)
    assert TDMPC2Agent.resolve_config(pend, cfg) == cfg  # idempotent
    ip = TDMPC2Agent.resolve_config(TASKS["inverted_pendulum"].resolve(), TDMPC2Config())
    assert ip.seed_steps == 5000 and ip.discount == pytest.approx(0.995)


def test_bad_sizes_fail_before_the_run():
    pend = TASKS["pendulum"].resolve()
    with pytest.raises(ConfigError, match="model_size must be one of"):
        TDMPC2Agent.resolve_config(pend, apply_overrides(TDMPC2Config(), {"model_size": 3}))
    with pytest.raises(ConfigError, match="multiple of simnorm_dim"):
        TDMPC2Agent.check_task(pend, apply_overrides(TDMPC2Config(), {"latent_dim": 20}))
    with pytest.raises(ConfigError, match="num_elites"):
        TDMPC2Agent.check_task(pend, apply_overrides(TDMPC2Config(), {"num_elites": 500}))


def test_actions_map_to_the_task_box_and_back():
    task = TASKS["pendulum"].resolve()  # [-2, 2]
    agent = TDMPC2Agent(
        task,
        apply_overrides(TDMPC2Config(), {"enc_dim": 16, "mlp_dim": 16, "latent_dim": 16}),
        RunContext.from_seed(0, total_steps=100),
    )
    a = np.array([1.5], np.float32)
    assert agent.to_model_action(a) == pytest.approx([0.75])
    assert agent.to_env_action(np.array([0.75])) == pytest.approx([1.5])
    assert agent.to_env_action(np.array([3.0])) == pytest.approx([2.0])
    assert agent.act(np.zeros(3, np.float32), explore=True).shape == (1,)  # seed phase: random


def test_fast_mish_matches_torch_with_its_gradient():
    from algorithms.models.layers import mish

    x = (torch.randn(2000, dtype=torch.float64) * 6).requires_grad_()
    torch.testing.assert_close(mish(x), torch.nn.functional.mish(x))
    assert torch.autograd.gradcheck(mish, (x[:50].detach().requires_grad_(),))
    with torch.no_grad():
        torch.testing.assert_close(mish(x), torch.nn.functional.mish(x))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tdmpc2_swings_up_the_pendulum():
    """The defaults (model_size 1; bf16 networks where the CPU has them, as the standard
    suite's entry), seed 0, cut at 6000 steps (1000 seed steps, then planning): the
    deterministic evaluation swings up from most starts. Measured in the standard suite
    (docs/algorithms/tdmpc2.md, another evaluation schedule, so other draws): -204 at 2000
    steps, -682 at 3000 (two of three starts at about -280, one not swung up)."""
    from algorithms.models.layers import cpu_has_fast_bf16
    from benchmark.driver import TrialSpec, eval_curve, run_trial

    spec = TrialSpec(
        "tdmpc2", "pendulum", 0, 6000, eval_every=3000, eval_episodes=3,
        overrides={"bf16": cpu_has_fast_bf16()}, threads=2,
    )  # fmt: skip
    curve = eval_curve(run_trial(spec))
    assert curve[-1][1] >= -400, curve


def test_episodic_and_reconstruction_variants_train():
    """``episodic`` adds the termination head and its loss, ``reconstruction_coef`` the decoder
    and its loss (the value-equivalence ablation); both run end to end on a terminating task."""
    from benchmark.driver import TrialSpec, run_trial

    small = {"enc_dim": 16, "mlp_dim": 16, "latent_dim": 16, "batch_size": 8, "seed_steps": 60}
    small |= {"num_samples": 24, "num_elites": 4, "num_pi_trajs": 2, "iterations": 1}
    spec = TrialSpec(
        "tdmpc2", "inverted_pendulum", 0, 120, eval_every=120, eval_episodes=1,
        overrides={**small, "episodic": True, "reconstruction_coef": 0.5}, device="cpu",
    )  # fmt: skip
    rows = run_trial(spec)
    metrics = {r["metric"] for r in rows}
    assert {"termination_loss", "reconstruction_loss", "ve_value_err_h1"} <= metrics
    assert all(math.isfinite(r["value"]) for r in rows)
