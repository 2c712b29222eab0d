"""The DDPG learner: targets, exploration, and learning on Pendulum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.learners.ddpg import DDPGLearner, DDPGLearnerConfig
from algorithms.replay.buffer import Batch


def _learner(**cfg) -> DDPGLearner:
    ones = np.ones(2, np.float32)
    config = DDPGLearnerConfig(hidden=16, **cfg)
    return DDPGLearner(3, 2, -2 * ones, 2 * ones, config, "cpu", torch.Generator().manual_seed(0))


def _batch(n: int = 8) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 4 - 2,
                 torch.randn(n, generator=g), torch.randn(n, 3, generator=g), torch.zeros(n))  # fmt: skip


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_polyak_targets_track_actor_and_critics():
    lr = _learner(tau=0.5)
    before = _flat(lr.actor_target), _flat(lr.critic_target)
    lr.update(_batch())
    for target, online, old in zip(
        (lr.actor_target, lr.critic_target), (lr.actor, lr.critic), before, strict=True
    ):
        torch.testing.assert_close(_flat(target), 0.5 * old + 0.5 * _flat(online))


def test_hard_targets_copy_every_n_updates():
    lr = _learner(target_every=3)
    start = _flat(lr.actor_target)
    lr.update(_batch())
    lr.update(_batch())
    assert torch.equal(_flat(lr.actor_target), start)
    assert not torch.equal(_flat(lr.actor), start)
    lr.update(_batch())
    assert torch.equal(_flat(lr.actor_target), _flat(lr.actor))
    assert torch.equal(_flat(lr.critic_target), _flat(lr.critic))


def test_td_target_and_exploration():
    lr = _learner(critics=3, exploration_noise=0.3)
    b = _batch()
    a_next = lr.actor_target(b.next_obs)[0]
    q = lr.q_values(b.next_obs, a_next, target=True)
    assert q.shape == (3, 8)
    torch.testing.assert_close(lr.td_target(b), b.reward + 0.99 * q.mean(0))
    obs = torch.randn(500, 3)
    det = lr.act(obs, deterministic=True)
    noisy = lr.act(obs, deterministic=False)
    assert noisy.abs().max() <= 2.0 + 1e-6  # clamped to the box
    # noise of 0.3 half-ranges (2.0 here) where the clamp does not bite
    inside = (det.abs() < 1.0).all(-1)
    assert float((noisy - det)[inside].std()) == pytest.approx(0.6, rel=0.1)
    _, logp = lr.rollout_policy(obs)
    assert torch.equal(logp, torch.zeros(500)) and float(lr.alpha) == 0.0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ddpg_learns_pendulum():
    """CleanRL's settings, seed 0: measured -206 at 5000 and -197 at 6000 env steps (random play
    about -1200; SAC -250 first at 4-5k)."""
    from benchmark.driver import TrialSpec, eval_curve, run_trial

    spec = TrialSpec("ddpg", "pendulum", 0, 6000, eval_every=1000, eval_episodes=3, threads=1)
    curve = eval_curve(run_trial(spec))
    assert curve[-1][1] >= -300, curve
