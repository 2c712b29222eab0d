"""MVE's and STEVE's critic targets against per-sample reference loops.

The batched targets (one reverse cumulative sum for MVE, one ``[H+1, N, M, L, B]`` tensor for
STEVE) are compared with the textbook recursions written sample by sample, member by member. The
policy and the model are replaced by deterministic functions so that both sides see the same
actions and states; the task's own termination function ends some imagined rollouts.
"""

from __future__ import annotations

import math

import pytest
import torch

from algorithms.api import RunContext, apply_overrides
from algorithms.models.ensemble import StepOutput
from algorithms.mve import MVEAgent, MVEConfig
from algorithms.replay.buffer import Batch
from algorithms.steve import STEVEAgent, STEVEConfig
from envs import TASKS

TASK = "cartpole_continuous"  # terminates when the cart or the pole leaves its bounds
SMALL = {"sac": {"hidden": 32}, "model": {"hidden": 32}}


def _policy(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic stand-in for the SAC policy: unit action, log-prob."""
    return torch.tanh(obs[:, :1] - obs[:, 2:3]), 0.1 * obs.pow(2).sum(-1) - 0.5


def _batch(task, b: int = 16) -> Batch:
    g = torch.Generator().manual_seed(0)
    obs = 0.8 * torch.randn(b, task.obs_dim, generator=g)
    act = torch.rand(b, task.act_dim, generator=g) * 2 - 1
    nxt = obs + 0.3 * torch.randn(b, task.obs_dim, generator=g)
    term = torch.zeros(b)
    term[:2] = 1.0
    return Batch(obs, act, torch.randn(b, generator=g), nxt, term)


def _agent(cls, cfg_cls, **overrides):
    task = TASKS[TASK].resolve()
    cfg = cls.resolve_config(task, apply_overrides(cfg_cls(), {**SMALL, **overrides}))
    agent = cls(task, cfg, RunContext.from_seed(0))
    agent.learner.policy = _policy
    with torch.no_grad():
        agent.learner.log_alpha.fill_(math.log(0.3))
        for p in agent.learner.critic_target.parameters():
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    return task, agent


def _q_min(agent, s: torch.Tensor, a_unit: torch.Tensor) -> float:
    return float(agent.learner.q_values(s[None], a_unit[None], target=True).min(0).values[0])


@pytest.mark.parametrize("td_k", [True, False])
def test_mve_targets_match_the_recursion(td_k: bool):
    h = 4
    task, agent = _agent(MVEAgent, MVEConfig, horizon=h, td_k=td_k)

    def step(s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return s + 0.4 * a + 0.05, s[:, 0] - a[:, 0] ** 2

    agent.target_step_fn = lambda: step
    batch = _batch(task)
    out = agent.critic_targets(batch)
    assert out is not None
    b, alpha, gamma = len(batch.obs), 0.3, agent.cfg.sac.gamma
    n_term = 0
    for i in range(b):
        s, states, acts, lps, rs, dones = batch.next_obs[i : i + 1], [], [], [], [], []
        for _ in range(h):
            a_unit, lp = _policy(s)
            a = agent.learner.to_env_action(a_unit)
            nxt, r = step(s, a)
            states.append(s[0])
            acts.append(a[0])
            lps.append(float(lp))
            rs.append(float(r))
            dones.append(bool(task.termination_fn(s, a, nxt)[0]))
            s = nxt
        a_unit, lp = _policy(s)
        g = _q_min(agent, s[0], a_unit[0]) - alpha * float(lp)
        q_imag = [0.0] * h
        for t in reversed(range(h)):
            q_imag[t] = rs[t] + gamma * (0.0 if dones[t] else 1.0) * g
            g = q_imag[t] - alpha * lps[t]
        y_real = float(batch.reward[i]) + gamma * (1 - float(batch.terminated[i])) * g
        assert float(out.target[i]) == pytest.approx(y_real, rel=1e-4, abs=1e-4)
        assert torch.equal(out.obs[i], batch.obs[i])
        if not td_k:
            assert float(out.weight[i]) == pytest.approx(1 / b)
            continue
        assert float(out.weight[i]) == pytest.approx(1 / (b * h))
        alive = float(batch.terminated[i]) == 0.0
        for t in range(h):
            row = b + t * b + i
            assert torch.allclose(out.obs[row], states[t])
            assert torch.allclose(out.act[row], acts[t])
            assert float(out.weight[row]) == pytest.approx(1 / (b * h) if alive else 0.0)
            if alive:
                assert float(out.target[row]) == pytest.approx(q_imag[t], rel=1e-4, abs=1e-4)
            else:
                n_term += 1
            alive = alive and not dones[t]
    assert n_term > 2 * h or not td_k, "the test needs terminated rollouts"
    assert len(out.target) == (b * (h + 1) if td_k else b)


def _fake_members(k: int, scale: torch.Tensor, shift: float = 0.05):
    """``step_members`` of a fake ensemble: member ``m`` moves by ``scale[m] * act``, its reward
    is ``scale[m] * x - act^2``; ``[B, ...]`` inputs go to every member, ``[K, B, ...]`` one each."""

    def step_members(obs, act, *, sample=True, generator=None):
        if obs.dim() == 2:
            obs, act = obs.expand(k, *obs.shape), act.expand(k, *act.shape)
        nxt = obs + scale.view(k, 1, 1) * act + shift
        return StepOutput(nxt, obs[..., 0] * scale.view(k, 1) - act[..., 0] ** 2)

    return step_members


@pytest.mark.parametrize("cross", [False, True])
def test_steve_candidates_and_weights_match_the_loops(cross: bool):
    h = 3
    task, agent = _agent(STEVEAgent, STEVEConfig, horizon=h, cross_rewards=cross)
    k = len(agent.model.elites)
    scale = torch.linspace(0.2, 0.6, k)
    agent.model.step_members = _fake_members(k, scale)
    batch = _batch(task)
    cand = agent.candidate_targets(batch)
    n_q, n_r = agent.cfg.sac.critics, k if cross else 1
    assert cand.shape == (h + 1, n_r, k, n_q, len(batch.obs))
    alpha, gamma = 0.3, agent.cfg.sac.gamma
    terminated_rollouts = 0
    for i in range(len(batch.obs)):
        for m in range(k):
            s, alive, pre = batch.next_obs[i : i + 1], 1.0 - float(batch.terminated[i]), [0.0] * n_r
            for j in range(h + 1):
                a_unit, lp = _policy(s)
                q = agent.learner.q_values(s, a_unit, target=True)[:, 0]
                for n in range(n_r):
                    for l_ in range(n_q):
                        want = float(batch.reward[i]) + gamma * (
                            pre[n] + gamma**j * alive * (float(q[l_]) - alpha * float(lp))
                        )
                        assert float(cand[j, n, m, l_, i]) == pytest.approx(
                            want, rel=1e-4, abs=1e-4
                        )
                if j == h:
                    break
                a = agent.learner.to_env_action(a_unit)
                nxt = s + scale[m] * a + 0.05
                for n in range(n_r):
                    r = float(s[0, 0] * scale[n if cross else m] - a[0, 0] ** 2)
                    pre[n] += gamma**j * alive * (r - alpha * float(lp))
                if bool(task.termination_fn(s, a, nxt)[0]) and alive:
                    terminated_rollouts += 1
                    alive = 0.0
                s = nxt
    assert terminated_rollouts > 0, "the test needs terminated rollouts"

    target = agent.critic_targets(batch)
    flat = cand.flatten(1, 3)
    inv = 1 / (flat.var(1, unbiased=False) + 1e-8)
    want = ((inv / inv.sum(0)) * flat.mean(1)).sum(0)
    assert torch.allclose(target, want)
    # a terminal real transition: every candidate of every horizon is its reward
    assert (target[:2] - batch.reward[:2]).abs().max() < 1e-5


def test_steve_trusts_the_model_less_where_members_disagree():
    """Members that agree: the weight moves to long horizons; members that disagree more at
    every step: the weight stays on horizon 0 (critics only)."""
    task, agent = _agent(STEVEAgent, STEVEConfig, horizon=3)
    k = len(agent.model.elites)
    batch = _batch(task)

    def weights(spread: float) -> list[float]:
        agent.model.step_members = _fake_members(k, 0.3 + spread * torch.linspace(-1, 1, k), 0.0)
        agent.critic_targets(batch)
        assert agent._weight_sum is not None
        w = agent._weight_sum.tolist()
        agent._weight_sum, agent._weight_count = None, 0
        return w

    agree, disagree = weights(0.0), weights(3.0)
    assert disagree[0] > agree[0] + 0.1
    assert sum(disagree[1:]) < sum(agree[1:])
