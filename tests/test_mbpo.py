"""MBPO and Dyna: schedule, branched rollouts, batch mixing, model-error probe, resume, learning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from algorithms.api import ConfigError, RunContext, Transition, apply_overrides
from algorithms.dyna import DynaAgent, DynaConfig
from algorithms.mbpo import MBPO_TASK_DEFAULTS, MBPOAgent, MBPOConfig
from algorithms.models.diagnostics import ModelErrorProbe
from algorithms.models.ensemble import StepOutput
from algorithms.models.layers import cpu_has_fast_bf16
from benchmark.driver import TrialSpec, eval_curve, run_trial
from envs import TASKS

#: bf16 networks where the CPU multiplies bf16 natively (the quick suite's setting), else fp32
FAST = {"sac.bf16": cpu_has_fast_bf16(), "model.bf16": cpu_has_fast_bf16()}

#: A tiny MBPO that runs in seconds (pendulum, 200-step episodes).
TINY = {
    "initial_random_steps": 200,
    "model.train_every": 100,
    "epoch_length": 100,
    "rollouts_per_step": 4,
    "rollout_schedule": (0, 3, 1, 3),
    "updates_per_step": 2,
    "sac.batch_size": 32,
    "sac.hidden": 32,
    "model.hidden": 32,
    "model.max_epochs": 3,
}


def _agent(cls=MBPOAgent, task="pendulum", seed=0, **overrides):
    spec = TASKS[task].resolve()
    cfg = apply_overrides(cls.Config(), {**TINY, **overrides})
    return cls(spec, cfg, RunContext.from_seed(seed, total_steps=5000)), spec


def _fill(agent, spec, steps, seed=0):
    env = spec.make_env()
    obs, _ = env.reset(seed=seed)
    for i in range(steps):
        a = agent.random_action()
        nxt, r, term, trunc, _ = env.step(a)
        agent.observe(Transition(obs, a, float(r), nxt, bool(term), bool(trunc)))
        obs = nxt
        if term or trunc:
            obs, _ = env.reset(seed=seed + i + 1)


# ---------------------------------------------------------------- config and schedule
def test_per_task_defaults_come_from_the_official_configs():
    ip = TASKS["inverted_pendulum"].resolve()
    c = MBPOConfig().for_task(ip)
    assert (c.updates_per_step, c.epoch_length, c.rollout_schedule) == (10, 250, (1, 15, 1, 1))
    assert c.sac.target_entropy == -0.05 and c.model.train_every == 250 and c.model.hidden == 200
    hc = MBPOConfig().for_task(TASKS["halfcheetah"].resolve())
    assert hc.updates_per_step == 40 and hc.epoch_length == 1000
    # an explicit value wins over the table
    assert MBPOConfig(updates_per_step=3).for_task(ip).updates_per_step == 3
    assert set(MBPO_TASK_DEFAULTS) <= set(TASKS.names())


def test_rollout_length_follows_the_schedule():
    agent, _ = _agent(task="hopper", rollout_schedule=(20, 150, 1, 15), epoch_length=1000)
    start = agent.cfg.initial_random_steps
    expect = {0: 1, 20: 1, 21: 1, 85: 8, 150: 15, 400: 15}  # int(1 + 14 * (e - 20) / 130)
    for epoch, k in expect.items():
        agent.data.env_steps = start + epoch * 1000
        assert agent.rollout_length() == k, epoch
    assert agent.model_buffer_capacity(15) == 1 * TINY["rollouts_per_step"] * 1000 * 15


def test_bad_overrides_fail_with_the_valid_keys():
    with pytest.raises(ConfigError, match="rollout_schedule"):
        apply_overrides(MBPOConfig(), {"rollout_shedule": (1, 2, 3, 4)})
    with pytest.raises(ConfigError, match="must be"):
        apply_overrides(MBPOConfig(), {"rollout_schedule": (1, 2, 3)})


# ---------------------------------------------------------------- rollouts and batches
class _CountingModel:
    """Wraps an ensemble's ``step`` to record the batch size of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, obs, act, **kw):
        self.calls.append(obs.shape[0])
        return self.model.__class__.step(self.model, obs, act, **kw)


def test_branched_rollouts_are_one_model_call_per_step_from_real_states():
    agent, spec = _agent()
    _fill(agent, spec, 200)
    agent.data.fit()
    counter = _CountingModel(agent.model)
    agent.model.step = counter  # type: ignore[method-assign]
    agent.data.env_steps = 200 + 3 * 100  # epoch 3: k = 3
    info = agent.rollout_model()
    n = agent.cfg.rollouts_per_step * agent.cfg.model.train_every
    assert info["rollout_length"] == 3 and len(counter.calls) == 3
    assert counter.calls[0] == n  # every rollout in one call (pendulum never terminates)
    buf = agent.model_buffer
    assert buf is not None and len(buf) == 3 * n
    # the first n model transitions start from real states
    real = {tuple(np.round(o, 5)) for o in agent.buffer.obs[: len(agent.buffer)]}
    assert all(tuple(np.round(o, 5)) in real for o in buf.obs[:n])


def test_rollouts_stop_terminated_rows():
    agent, spec = _agent(task="inverted_pendulum", rollout_schedule=(0, 1, 4, 4))
    _fill(agent, spec, 200)
    agent.data.fit()
    counter = _CountingModel(agent.model)
    agent.model.step = counter  # type: ignore[method-assign]
    agent.rollout_model()
    assert counter.calls == sorted(counter.calls, reverse=True)
    buf = agent.model_buffer
    assert buf is not None
    # every row added after a terminal one comes from a live state
    assert len(buf) == sum(counter.calls)


def test_sac_batches_mix_real_and_model_data():
    agent, spec = _agent()
    _fill(agent, spec, 200)
    b = agent.sample_batches(5)
    assert b.obs.shape == (5, 32, 3)  # no model data yet: all real
    agent.data.fit()
    agent.rollout_model()
    b = agent.sample_batches(5)
    assert b.obs.shape == (5, 32, 3) and b.reward.shape == (5, 32)
    n_real = int(32 * agent.cfg.real_ratio)
    real = {tuple(np.round(o, 5)) for o in agent.buffer.obs[: len(agent.buffer)]}
    for g in range(5):
        assert all(tuple(np.round(o.numpy(), 5)) in real for o in b.obs[g, :n_real])


def test_model_buffer_resizes_keeping_the_newest_rollouts():
    agent, _ = _agent()
    small = agent._resize_model_buffer(10)
    small.add_batch(*(np.arange(15.0).reshape(15, 1) * np.ones((1, d)) for d in (3, 1, 1, 3, 1)))
    big = agent._resize_model_buffer(20)
    assert len(big) == 10 and sorted(big.reward[:10].tolist()) == list(range(5, 15))
    assert big.reward[9] == 14.0  # oldest first, newest last


def test_dyna_rolls_whole_episodes_from_initial_states():
    agent, spec = _agent(DynaAgent, rollout_horizon=50)
    _fill(agent, spec, 400)  # two episodes: two initial states
    assert len(agent._starts) == 2
    agent.data.fit()
    counter = _CountingModel(agent.model)
    agent.model.step = counter  # type: ignore[method-assign]
    info = agent.rollout_model()
    n = agent.cfg.rollouts_per_step * agent.cfg.model.train_every
    assert info["rollout_length"] == 50 and len(counter.calls) == 50
    assert counter.calls[0] == math.ceil(n / 50)
    starts = {tuple(np.round(s, 5)) for s in agent._starts}
    buf = agent.model_buffer
    assert buf is not None and buf.capacity == agent.model_buffer_capacity(1)
    assert {tuple(np.round(o, 5)) for o in buf.obs[: counter.calls[0]]} <= starts
    assert isinstance(agent.cfg, DynaConfig)


# ---------------------------------------------------------------- model-error probe
class _LinearModel:
    """``s' = s + bias``: an exact model when ``bias == 0``."""

    fitted = True
    device = torch.device("cpu")

    def __init__(self, bias=0.0):
        self.bias = bias

    def step(self, obs, act, **kw):
        return StepOutput(obs + act + self.bias, None)


def _probe_data(probe, n, done_at=()):
    obs = np.zeros(2, np.float32)
    for i in range(n):
        act = np.full(2, 0.1 * (i % 3), np.float32)
        nxt = obs + act
        done = i in done_at
        probe.add(Transition(obs, act[:2], 0.0, nxt, done, False))
        obs = np.full(2, 5.0 * i, np.float32) if done else nxt  # a reset jumps


def test_probe_exact_model_has_zero_error_and_windows_never_cross_resets():
    probe = ModelErrorProbe(2, 2, (1, 3, 10))
    _probe_data(probe, 40, done_at=(12, 25))
    out = probe.measure(_LinearModel(0.0))
    assert set(out) == {"model_err_h1", "model_err_h3", "model_err_h10"}
    assert all(v < 1e-10 for v in out.values()), out
    assert probe.measure(_LinearModel(0.0)) == {}  # measured data is forgotten


def test_probe_error_compounds_with_the_horizon():
    probe = ModelErrorProbe(2, 2, (1, 2, 4, 8))
    _probe_data(probe, 60)
    out = probe.measure(_LinearModel(0.01))
    errs = [out[f"model_err_h{k}"] for k in (1, 2, 4, 8)]
    assert errs == sorted(errs) and errs[-1] > 30 * errs[0]  # (k * bias)^2 growth


def test_probe_leaves_out_horizons_without_a_window():
    probe = ModelErrorProbe(2, 2, (1, 50))
    _probe_data(probe, 20)
    assert set(probe.measure(_LinearModel(0.0))) == {"model_err_h1"}


# ---------------------------------------------------------------- driver: metrics, resume
def test_mbpo_trial_logs_model_error_and_rollout_length():
    spec = TrialSpec("mbpo", "pendulum", 0, 600, eval_every=200, eval_episodes=1, overrides=TINY)
    rows = run_trial(spec)
    metrics = {r["metric"] for r in rows}
    assert {"model_err_h1", "model_err_h5", "rollout_length", "model_holdout_mse"} <= metrics
    assert {"critic_loss", "alpha"} <= metrics


def test_mbpo_resumes_exactly(tmp_path):
    spec = TrialSpec("mbpo", "pendulum", 1, 800, eval_every=200, eval_episodes=1, overrides=TINY)

    class Stop(Exception):
        pass

    def stop(new, rows):
        if any(r["metric"] == "eval_return" and r["env_step"] == 600 for r in new):
            raise Stop

    with pytest.raises(Stop):
        run_trial(spec, trial_dir=tmp_path, report=stop)
    assert (tmp_path / "checkpoint.pt").exists()
    resumed = pd.DataFrame(run_trial(spec, trial_dir=tmp_path))
    fresh = pd.DataFrame(run_trial(spec))
    key = ["env_step", "metric"]

    def clean(df):
        return (
            df[df.metric != "steps_per_s"].sort_values(key).reset_index(drop=True)[[*key, "value"]]
        )

    pd.testing.assert_frame_equal(clean(resumed), clean(fresh))


# ---------------------------------------------------------------- learning
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_mbpo_learns_inverted_pendulum():
    """The quick suite's MBPO (the code's InvertedPendulum settings: 5000 random steps, G = 10,
    k = 1; bf16 networks where the CPU has them), seed 0, cut at 9000 steps: the deterministic
    policy balances for the full 1000 steps and keeps doing so. Measured: 1000 from 7000 steps
    on (bf16), from 8000 (fp32)."""
    spec = TrialSpec(
        "mbpo", "inverted_pendulum", 0, 9000, eval_every=1000, eval_episodes=2,
        overrides=FAST, threads=2,
    )  # fmt: skip
    curve = eval_curve(run_trial(spec))
    assert curve[-1][1] >= 950, curve


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_dyna_learns_inverted_pendulum():
    """Dyna's whole-episode rollouts suffice on this easy task (the contrast with MBPO shows on
    Hopper): seed 0 of the quick suite's setting balances for the full episode by 9000 steps
    (measured: 1000 from 8000 steps on)."""
    spec = TrialSpec(
        "dyna", "inverted_pendulum", 0, 9000, eval_every=1000, eval_episodes=2,
        overrides=FAST, threads=2,
    )  # fmt: skip
    curve = eval_curve(run_trial(spec))
    assert curve[-1][1] >= 950, curve
