"""Batched rollouts: termination masking, particles, policies, gradients, true dynamics."""

from __future__ import annotations

import pytest
import torch

from algorithms.planners.rollout import rollout


def integrator(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """``x' = x + a`` (1-D)."""
    return obs + act


def one_per_step(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    return torch.ones(obs.shape[:-1])


def ends_at_two(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    return nxt[..., 0] >= 2.0


def test_rewards_masked_after_termination() -> None:
    obs = torch.zeros(3, 1)
    actions = torch.stack(
        [
            torch.ones(5, 1),  # x = 1, 2 (ends at step 2), ...
            torch.zeros(5, 1),  # never ends
            torch.tensor([[0.0], [0.0], [0.0], [3.0], [-5.0]]),  # ends at step 4, then would leave
        ]
    )
    res = rollout(
        integrator, obs, actions, reward_fn=one_per_step, termination_fn=ends_at_two, gamma=1.0
    )
    # the terminating step's reward counts, nothing after it
    torch.testing.assert_close(res.returns, torch.tensor([2.0, 5.0, 4.0]))
    assert res.alive.squeeze(1).tolist() == [False, True, False]
    # a terminated particle stays at its terminal state
    torch.testing.assert_close(res.final_obs[:, 0, 0], torch.tensor([2.0, 0.0, 3.0]))
    disc = rollout(
        integrator, obs, actions, reward_fn=one_per_step, termination_fn=ends_at_two, gamma=0.5
    )
    torch.testing.assert_close(disc.returns, torch.tensor([1.5, 1.9375, 1.875]))


def test_nan_after_termination_does_not_leak() -> None:
    def blow_up(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.where(obs >= 2.0, torch.full_like(obs, float("nan")), obs + act)

    res = rollout(
        blow_up,
        torch.zeros(1, 1),
        torch.ones(1, 6, 1),
        reward_fn=lambda o, a, n: n[..., 0],
        termination_fn=ends_at_two,
    )
    torch.testing.assert_close(res.returns, torch.tensor([3.0]))  # 1 + 2


def test_true_dynamics_rollout_matches_manual_stepping() -> None:
    from envs.classic import pendulum as pend

    g = torch.Generator().manual_seed(0)
    n, h = 6, 12
    th = torch.rand(n, generator=g) * 6.28 - 3.14
    obs = torch.stack([th.cos(), th.sin(), torch.randn(n, generator=g)], dim=-1)
    actions = torch.rand(n, h, 1, generator=g) * 4 - 2
    res = rollout(
        pend.dynamics,
        obs,
        actions,
        reward_fn=pend.reward_fn,
        termination_fn=pend.termination_fn,
        gamma=0.9,
    )
    for i in range(n):
        x, total = obs[i], 0.0
        for t in range(h):
            nxt = pend.dynamics(x, actions[i, t])
            total += 0.9**t * float(pend.reward_fn(x, actions[i, t], nxt))
            x = nxt
        assert float(res.returns[i]) == pytest.approx(total, rel=1e-5, abs=1e-4)
        torch.testing.assert_close(res.final_obs[i, 0], x)


def test_particles_layout_and_average() -> None:
    p = 3

    def noisy(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        # particle index of row n * P + p is p: add it, so particles of a sequence differ
        return obs + act + (torch.arange(len(obs)) % p).unsqueeze(-1).float()

    obs = torch.tensor([[0.0], [10.0]])
    actions = torch.ones(2, 2, 1)
    res = rollout(noisy, obs, actions, reward_fn=lambda o, a, n: n[..., 0], particles=p)
    assert res.particle_returns.shape == (2, p) and res.final_obs.shape == (2, p, 1)
    # particle k: x1 = x0 + 1 + k, x2 = x0 + 2 + 2k; return = 2 x0 + 3 + 3k
    expected = torch.tensor([[3.0, 6.0, 9.0], [23.0, 26.0, 29.0]])
    torch.testing.assert_close(res.particle_returns, expected)
    torch.testing.assert_close(res.returns, expected.mean(1))


def test_policy_rollout_terminal_value_and_model_reward() -> None:
    def model(obs: torch.Tensor, act: torch.Tensor):
        return obs + act, 10 * torch.ones(len(obs))  # a model with its own reward head

    res = rollout(
        model,
        torch.tensor([[4.0]]),
        policy=lambda o: -0.5 * o,  # halves the state every step
        horizon=3,
        gamma=0.5,
        terminal_value=lambda o: 100 * o[..., 0],
    )
    # rewards 10 + 5 + 2.5, then 0.125 * V(0.5) = 0.125 * 50
    torch.testing.assert_close(res.returns, torch.tensor([17.5 + 6.25]))


def test_returns_are_differentiable_in_actions() -> None:
    actions = torch.zeros(4, 5, 1, requires_grad=True)
    obs = torch.zeros(4, 1)
    res = rollout(integrator, obs, actions, reward_fn=lambda o, a, n: -((n[..., 0] - 1) ** 2))
    res.returns.sum().backward()
    assert actions.grad is not None
    # d/da_t of -sum_s (x_s - 1)^2 at x = 0: 2 * (number of later states incl. x_{t+1})
    torch.testing.assert_close(actions.grad[0, :, 0], torch.tensor([10.0, 8.0, 6.0, 4.0, 2.0]))


def test_argument_checks() -> None:
    obs = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="exactly one"):
        rollout(integrator, obs, reward_fn=one_per_step)
    with pytest.raises(ValueError, match="horizon"):
        rollout(integrator, obs, policy=lambda o: o, reward_fn=one_per_step)
    with pytest.raises(ValueError, match="reward_fn"):
        rollout(integrator, obs, torch.zeros(2, 3, 1))


def test_imagine_steps_compacts_terminated_rollouts() -> None:
    from algorithms.planners.rollout import imagine_steps

    obs = torch.tensor([[0.0], [1.5], [-9.0]])  # row 1 ends at its first step, row 0 at its second
    sizes, rows = [], []
    for step in imagine_steps(
        integrator, obs, lambda o: torch.ones_like(o), 4, reward_fn=one_per_step,
        termination_fn=ends_at_two,
    ):  # fmt: skip
        sizes.append(len(step.obs))
        rows.append(step.rows.tolist())
        torch.testing.assert_close(step.next_obs, step.obs + 1)
    assert sizes == [3, 2, 1, 1] and rows == [[0, 1, 2], [0, 2], [2], [2]]


def test_imagine_pads_past_termination_and_keeps_gradients() -> None:
    from algorithms.planners.rollout import imagine

    start = torch.tensor([[0.0], [1.5]], requires_grad=True)
    scale = torch.tensor(1.0, requires_grad=True)
    tr = imagine(
        integrator, start, lambda o: scale * torch.ones_like(o), 3, reward_fn=one_per_step,
        termination_fn=ends_at_two,
    )  # fmt: skip
    assert tr.obs.shape == (4, 2, 1) and tr.act.shape == (3, 2, 1) and tr.mask.shape == (3, 2)
    assert tr.mask.T.tolist() == [[True, True, False], [True, False, False]]
    assert tr.terminated.T.tolist() == [[False, True, False], [True, False, False]]
    # past its end a rollout stays at its terminal state, with zero action and reward
    assert tr.obs[:, 1, 0].tolist() == [1.5, 2.5, 2.5, 2.5]
    assert tr.reward.T.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    tr.obs[-1].sum().backward()  # x_H = x_0 + (steps taken) * scale
    assert start.grad.tolist() == [[1.0], [1.0]] and scale.grad.item() == 3.0
    # every rollout ends early: the remaining steps are padding
    short = imagine(integrator, torch.tensor([[1.5]]), lambda o: torch.ones_like(o), 3,
                    reward_fn=one_per_step, termination_fn=ends_at_two)  # fmt: skip
    assert short.mask[:, 0].tolist() == [True, False, False] and short.obs.shape == (4, 1, 1)
