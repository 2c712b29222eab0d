"""SAC: learner unit tests (fast) and a bounded Pendulum learning test (``slow``)."""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pytest
import torch

from algorithms import get_algorithm
from algorithms.api import RunContext, Transition, apply_overrides
from algorithms.learners.sac import SACLearner, SACLearnerConfig
from algorithms.replay.buffer import Batch
from algorithms.sac import SACAgent, SACConfig
from envs import make_task

OBS, ACT, B = 3, 2, 64
LOW, HIGH = np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32)


def make_learner(seed: int = 0, **cfg) -> SACLearner:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return SACLearner(OBS, ACT, LOW, HIGH, SACLearnerConfig(**cfg), "cpu", gen)


def make_batch(seed: int = 0, n: int = B) -> Batch:
    g = torch.Generator().manual_seed(1000 + seed)
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    return Batch(
        obs=torch.randn(n, OBS, generator=g),
        act=low + (high - low) * torch.rand(n, ACT, generator=g),
        reward=torch.randn(n, generator=g),
        next_obs=torch.randn(n, OBS, generator=g),
        terminated=(torch.rand(n, generator=g) < 0.1).float(),
    )


@pytest.fixture(scope="module")
def pendulum():
    return make_task("pendulum")


def make_agent(task, seed: int = 0, **overrides) -> SACAgent:
    torch.manual_seed(seed)
    cfg = apply_overrides(SACConfig(), overrides)
    return SACAgent(task, cfg, RunContext.from_seed(seed, total_steps=10_000))


# ---- learner ---------------------------------------------------------------------------------


def test_update_is_the_three_separate_steps():
    """Value expansion calls the critic, actor and target steps apart: together they are
    exactly ``update``; a given critic target replaces the one-step TD target."""
    whole, parts = make_learner(), make_learner()
    stats = whole.update(make_batch())
    critic = parts.update_critic(make_batch())
    actor = parts.update_actor(make_batch().obs)
    parts.update_targets()
    for a, b in zip(whole.state_dict().values(), parts.state_dict().values(), strict=True):
        if isinstance(a, dict) and "state" in a:  # optimizer states
            continue
        if isinstance(a, dict):
            for k in a:
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        elif torch.is_tensor(a):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert stats["critic_loss"] == critic["critic_loss"].item()
    assert stats["actor_loss"] == actor["actor_loss"].item() and parts.updates == 1
    # another target moves the critics elsewhere
    other = make_learner()
    other.update_critic(make_batch(), target=torch.full((B,), 50.0))
    assert not torch.equal(
        other.critic.state_dict()["out.weight"], parts.critic.state_dict()["out.weight"]
    )


def test_act_shapes_and_bounds():
    learner = make_learner()
    obs = torch.randn(1000, OBS) * 5
    for deterministic in (False, True):
        a = learner.act(obs, deterministic=deterministic)
        assert a.shape == (1000, ACT) and a.dtype == torch.float32
        assert (a >= torch.as_tensor(LOW)).all() and (a <= torch.as_tensor(HIGH)).all()
    a = learner.act(obs, deterministic=False)
    # The stochastic policy covers the box (scale and offset, not [-1, 1]).
    assert a[:, 0].max() > 1.0 and a[:, 1].min() < 0.25 < a[:, 1].max()
    a_unit = torch.rand(10, ACT) * 2 - 1
    torch.testing.assert_close(learner.to_unit_action(learner.to_env_action(a_unit)), a_unit)


def test_deterministic_act_is_tanh_mean_and_draws_no_noise():
    learner = make_learner()
    obs = torch.randn(8, OBS)
    state = learner.generator.get_state()
    a1, a2 = learner.act(obs, True), learner.act(obs, True)
    assert torch.equal(a1, a2)
    assert torch.equal(state, learner.generator.get_state())
    with torch.no_grad():
        mean, _ = learner.actor(obs)
    torch.testing.assert_close(a1, learner.to_env_action(torch.tanh(mean)))
    # Stochastic actions consume the learner's generator and differ between calls.
    assert not torch.equal(learner.act(obs, False), learner.act(obs, False))


def test_sampling_uses_given_generator_not_global_rng():
    learner_a, learner_b = make_learner(seed=0), make_learner(seed=0)
    obs = torch.randn(4, OBS)
    torch.manual_seed(123)
    a = learner_a.act(obs, False)
    torch.manual_seed(456)
    b = learner_b.act(obs, False)
    assert torch.equal(a, b)
    global_state = torch.get_rng_state()
    learner_a.update(make_batch())
    assert torch.equal(global_state, torch.get_rng_state())


def test_log_prob_matches_tanh_transformed_normal():
    learner = make_learner()
    obs = torch.randn(B, OBS)
    noise = torch.randn(B, ACT)
    with torch.no_grad():
        a, log_prob = learner.actor.sample(obs, noise)
        mean, log_std = learner.actor(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.TanhTransform(cache_size=1)],
    )
    u = mean + log_std.exp() * noise
    torch.testing.assert_close(a, torch.tanh(u))
    expected = dist.log_prob(torch.tanh(u).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)


def test_twin_critics_are_one_ensemble_with_distinct_members():
    learner = make_learner()
    batch = make_batch()
    with torch.no_grad():
        q = learner.q_values(batch.obs, learner.to_unit_action(batch.act))
    assert q.shape == (2, B)
    assert not torch.allclose(q[0], q[1])
    assert learner.critic.out.weight.shape[0] == 2


def test_update_decreases_critic_loss_on_fixed_batch():
    learner = make_learner()
    batch = make_batch()
    y = learner.td_target(batch)

    def loss() -> float:
        with torch.no_grad():
            q = learner.q_values(batch.obs, learner.to_unit_action(batch.act))
        return float(0.5 * (q - y).pow(2).mean(1).sum())

    before = loss()
    metrics = learner.update(batch, target=y)
    assert metrics["critic_loss"] == pytest.approx(before, rel=1e-5)
    assert loss() < before
    for _ in range(20):
        learner.update(batch, target=y)
    assert loss() < 0.9 * before


def test_targets_move_by_tau_and_metrics():
    learner = make_learner(tau=0.005)
    old_target = copy.deepcopy(learner.critic_target.state_dict())
    metrics = learner.update(make_batch())
    assert set(metrics) == {
        "critic_loss",
        "actor_loss",
        "alpha_loss",
        "alpha",
        "entropy",
        "q_mean",
    }
    assert all(np.isfinite(v) for v in metrics.values())
    new_online = learner.critic.state_dict()
    for k, v in learner.critic_target.state_dict().items():
        torch.testing.assert_close(v, 0.995 * old_target[k] + 0.005 * new_online[k])
        assert not torch.equal(v, old_target[k])
    # The actor's update leaves the critic's gradients alone (it was frozen for that pass).
    assert all(p.requires_grad for p in learner.critic.parameters())


@pytest.mark.parametrize(("target_entropy", "sign"), [(10.0, 1), (-10.0, -1)])
def test_temperature_moves_towards_target_entropy(target_entropy, sign):
    learner = make_learner(target_entropy=target_entropy)
    before = float(learner.log_alpha.detach())
    learner.update(make_batch())
    assert sign * (float(learner.log_alpha.detach()) - before) > 0
    assert learner.target_entropy == target_entropy
    assert make_learner().target_entropy == -ACT


def test_fixed_alpha():
    learner = make_learner(autotune_alpha=False, init_alpha=0.2)
    learner.update(make_batch())
    assert float(learner.alpha) == pytest.approx(0.2)


def test_bf16_autocast_runs():
    learner = make_learner(bf16=True)
    metrics = learner.update(make_batch())
    assert all(np.isfinite(v) for v in metrics.values())
    a = learner.act(torch.randn(5, OBS), False)
    assert a.dtype == torch.float32 and a.shape == (5, ACT)


def test_learner_state_dict_round_trip():
    a, b = make_learner(seed=0), make_learner(seed=1)
    a.update(make_batch(0))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=False))
    assert a.state_dict()["generator"] is None  # on CPU: the trial's generator, not the learner's
    b.generator.set_state(a.generator.get_state())  # what the driver restores
    obs = torch.randn(4, OBS)
    assert torch.equal(a.act(obs, False), b.act(obs, False))
    ma, mb = a.update(make_batch(1)), b.update(make_batch(1))
    assert ma == mb
    assert torch.equal(a.act(obs, True), b.act(obs, True))


# ---- plugin ----------------------------------------------------------------------------------


def test_config_fields_documented_defaults():
    cfg = SACConfig()
    assert get_algorithm("sac") is SACAgent
    assert (cfg.lr, cfg.gamma, cfg.tau, cfg.batch_size) == (3e-4, 0.99, 0.005, 256)
    assert (cfg.hidden, cfg.layers, cfg.buffer_size, cfg.updates_per_step) == (256, 2, 10**6, 1)
    assert cfg.target_entropy is None and cfg.initial_random_steps == 1000
    # the SAC fields are written once: the plugin's config extends the learner's
    assert isinstance(cfg, SACLearnerConfig)
    learner_fields = [f.name for f in dataclasses.fields(SACLearnerConfig)]
    assert learner_fields == [f.name for f in dataclasses.fields(SACConfig)][: len(learner_fields)]


def test_agent_act_observe_update(pendulum):
    agent = make_agent(pendulum, initial_random_steps=20, batch_size=16)
    env = pendulum.make_env()
    obs, _ = env.reset(seed=0)
    for t in range(25):
        a = agent.act(obs, explore=True)
        assert a.shape == (1,) and a.dtype == np.float32 and -2 <= a[0] <= 2
        next_obs, r, term, trunc, _ = env.step(a)
        agent.observe(Transition(obs, a, float(r), next_obs, bool(term), bool(trunc)))
        metrics = agent.update()
        assert (metrics == {}) == (t + 1 < 20)
        obs = next_obs
    assert metrics["alpha"] < 1.0
    e1, e2 = agent.act(obs, explore=False), agent.act(obs, explore=False)
    assert np.array_equal(e1, e2) and e1.shape == (1,)
    env.close()


def test_terminated_not_truncated_stops_bootstrapping(pendulum):
    agent = make_agent(pendulum)
    o = np.zeros(3, np.float32)
    a = np.zeros(1, np.float32)
    agent.observe(Transition(o, a, 0.0, o, False, True))
    agent.observe(Transition(o, a, 0.0, o, True, False))
    assert agent.buffer.terminated[:2].tolist() == [0.0, 1.0]
    learner = agent.learner
    batch = agent.buffer.get(np.arange(2))
    with torch.no_grad():
        state = learner.generator.get_state()
        v = learner.soft_value_target(batch.next_obs)
        learner.generator.set_state(state)
        y = learner.td_target(batch)
    torch.testing.assert_close(y, torch.stack([0.99 * v[0], torch.tensor(0.0)]))


def test_agent_state_dict_round_trip_gives_identical_actions(pendulum):
    def step(agent, obs, t):
        a = agent.act(obs, explore=True)
        nxt = obs + 0.01 * t
        agent.observe(Transition(obs, a, -float(t), nxt, False, False))
        agent.update()
        return a, nxt

    a = make_agent(pendulum, seed=0, initial_random_steps=10, batch_size=8)
    obs = np.array([1.0, 0.0, 0.0], np.float32)
    for t in range(15):
        _, obs = step(a, obs, t)
    state = copy.deepcopy(a.state_dict())
    b = make_agent(pendulum, seed=1, initial_random_steps=10, batch_size=8)
    b.load_state_dict(state)
    b.ctx.load_generator_state(a.ctx.generator_state())  # the driver's part of a resume
    obs_b = obs.copy()
    for t in range(15, 25):
        act_a, obs = step(a, obs, t)
        act_b, obs_b = step(b, obs_b, t)
        assert np.array_equal(act_a, act_b)
    assert np.array_equal(a.act(obs, explore=False), b.act(obs_b, explore=False))


# ---- learning ---------------------------------------------------------------------------------

PENDULUM_STEPS = 6000
PENDULUM_THRESHOLD = -400.0
"""Measured (this code, driver defaults, 1 thread): eval return at 5k / 6k env steps was
-173 / -170 (seed 0), -219 / -217 (seed 1), -125 / -124 (seed 2); random play scores about -1500."""


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.timeout(600)
def test_sac_learns_pendulum():
    """SAC reaches a mean deterministic return >= -400 on Pendulum-v1 within 6k env steps.

    The better of the last two evaluations (5k and 6k steps) must pass, so one unlucky eval
    episode (a swing-up that takes a second try) cannot fail the test.
    """
    from benchmark.driver import TrialSpec, eval_curve, run_trial

    rows = run_trial(
        TrialSpec(
            algo="sac",
            task="pendulum",
            seed=0,
            total_steps=PENDULUM_STEPS,
            eval_every=1000,
            eval_episodes=5,
            device="cpu",
        )
    )
    curve = eval_curve(rows)
    assert curve[-1][0] == PENDULUM_STEPS
    assert max(v for _, v in curve[-2:]) >= PENDULUM_THRESHOLD, curve
