"""The ``dqn`` plugin: its targets, exploration schedule and target updates, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import RunContext
from algorithms.api import Transition, apply_overrides
from algorithms.dqn import DQNAgent, DQNConfig
from envs import TASKS


def _agent(total_steps: int = 1000, **cfg) -> DQNAgent:
    task = TASKS["cartpole"].resolve()
    config = apply_overrides(DQNConfig(), {"hidden": (16,), **cfg})
    return DQNAgent(task, config, RunContext.from_seed(0, total_steps=total_steps))


def _fill(agent: DQNAgent, n: int) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        obs, nxt = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
        term = i % 7 == 0
        agent.observe(Transition(obs, np.asarray([i % 2], np.float32), 1.0, nxt, term, False))


def test_epsilon_falls_linearly_over_the_budget_share():
    agent = _agent(total_steps=1000, exploration_fraction=0.5, start_e=1.0, end_e=0.1)
    assert agent.epsilon() == 1.0
    agent.env_steps = 250
    assert agent.epsilon() == pytest.approx(0.55)
    agent.env_steps = 500
    assert agent.epsilon() == pytest.approx(0.1)
    agent.env_steps = 900
    assert agent.epsilon() == pytest.approx(0.1)


@pytest.mark.parametrize("double", [True, False])
def test_td_target_double_and_nature(double):
    """Double DQN: the online network picks a*, the target network scores it; Nature: max of the
    target network. With online != target the two differ."""
    agent = _agent(double=double, batch_size=64, learning_starts=0, train_frequency=1)
    with torch.no_grad():
        for p in agent.q_target.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    _fill(agent, 64)
    b = agent.buffer.all()
    q_t = agent.q_target(b.next_obs)
    if double:
        q_next = q_t.gather(-1, agent.q(b.next_obs).argmax(-1, keepdim=True))[:, 0]
    else:
        q_next = q_t.max(-1).values
    expected = b.reward + 0.99 * (1 - b.terminated) * q_next
    q_sa = agent.q(b.obs).gather(-1, b.act.long())[:, 0]
    want = torch.nn.functional.mse_loss(q_sa, expected)
    agent.buffer.sample = lambda n: b  # the whole buffer as the batch
    got = agent._train_step()["td_loss"]
    assert got == pytest.approx(float(want.detach()), rel=1e-5)


def test_targets_update_every_n_steps_and_learning_waits():
    """CleanRL's counting: the step just stored has 0-based index ``env_steps - 1``."""
    agent = _agent(learning_starts=20, train_frequency=2, target_network_frequency=10)
    start = [p.clone() for p in agent.q_target.parameters()]
    _fill(agent, 21)
    assert agent.update() == {}  # index 20: not past learning_starts
    _fill(agent, 1)
    assert agent.update() == {}  # index 21: not a multiple of train_frequency
    _fill(agent, 1)
    assert "td_loss" in agent.update()  # index 22
    for _ in range(7):
        _fill(agent, 1)
        agent.update()
    assert all(torch.equal(a, b) for a, b in zip(agent.q_target.parameters(), start, strict=True))
    _fill(agent, 1)  # index 30: a target update, a hard copy (tau = 1)
    agent.update()
    for a, b in zip(agent.q_target.parameters(), agent.q.parameters(), strict=True):
        assert torch.equal(a, b)


def test_greedy_evaluation_and_state_value():
    agent = _agent()
    obs = np.zeros(4, np.float32)
    q = agent.q(torch.zeros(1, 4))[0].detach()
    assert agent.act(obs, explore=False) == int(q.argmax())
    assert agent.state_value(obs) == pytest.approx(float(q.max()))
    acts = {agent.act(obs, explore=True) for _ in range(50)}  # epsilon 1 at step 0
    assert acts == {0, 1}


def test_continuous_tasks_are_refused_before_a_trial_runs():
    from algorithms.api import ConfigError
    from benchmark.driver import TrialSpec, resolve

    with pytest.raises(ConfigError, match="discrete_actions"):
        resolve(TrialSpec("dqn", "pendulum", 0, 200))


@pytest.mark.slow  # not in .ci/run's subset (4 min on CI's host): the canary learns in `make test`
@pytest.mark.timeout(1800)
def test_dqn_learns_cartpole():
    """CleanRL's settings and budget (500k steps), seed 0: measured 247 (50k), 291, 272, 302,
    461 (250k, epsilon at 0.05 from here), 500, 500, 498, 500, 500; 145 s on one core."""
    from benchmark.driver import TrialSpec, eval_curve, run_trial

    spec = TrialSpec("dqn", "cartpole", 0, 500_000, eval_every=50_000, eval_episodes=5)
    curve = eval_curve(run_trial(spec))
    late = [r for s, r in curve if s >= 300_000]
    assert np.mean(late) >= 450, curve
