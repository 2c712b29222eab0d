"""Batched model rollouts: the returns of many action sequences (or a policy) in one pass.

Shapes: ``N`` sequences (or start states), ``P`` particles per sequence, ``H`` horizon, ``O`` obs
dim, ``A`` action dim. Particles are laid out sequence-major: row ``n * P + p`` of the internal
``[N * P, O]`` batch is particle ``p`` of sequence ``n`` (``obs.repeat_interleave(P, 0)``), so a
``[N * P]`` vector reshapes to ``[N, P]``. Every horizon step is ONE call of ``step_fn`` on the
whole ``[N * P, ...]`` batch.

Nothing here is under ``torch.no_grad()``: returns are differentiable in the actions, the start
states and the model weights (gradient-based planners rely on it; sampling planners wrap their
call in ``no_grad``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from envs.spec import RewardFn, TerminationFn

#: ``step_fn(obs [M, O], act [M, A])`` -> ``next_obs [M, O]`` or ``(next_obs, reward [M] | None)``
#: (a learned model with a reward head returns its reward; ``None`` means "use ``reward_fn``").
StepFn = Callable[
    [torch.Tensor, torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]
]
#: ``policy(obs [M, O]) -> act [M, A]``.
PolicyFn = Callable[[torch.Tensor], torch.Tensor]
#: ``value(obs [M, O]) -> [M]`` bootstrap value of the state reached after ``H`` steps.
ValueFn = Callable[[torch.Tensor], torch.Tensor]


class RolloutResult(NamedTuple):
    returns: torch.Tensor
    """``[N]``: per-sequence return, averaged over the ``P`` particles."""
    particle_returns: torch.Tensor
    """``[N, P]``: the return of every particle."""
    final_obs: torch.Tensor
    """``[N, P, O]``: the last state (a terminated particle stays at its terminal state)."""
    alive: torch.Tensor
    """``[N, P]`` bool: particles that never terminated within the horizon."""


def rollout(
    step_fn: StepFn,
    obs: torch.Tensor,
    actions: torch.Tensor | None = None,
    *,
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
    policy: PolicyFn | None = None,
    horizon: int | None = None,
    gamma: float = 1.0,
    particles: int = 1,
    terminal_value: ValueFn | None = None,
) -> RolloutResult:
    """Roll ``N`` start states forward and score them.

    Args:
        step_fn: the model (see :data:`StepFn`): an ``EnsembleStep``, or a task's true
            ``dynamics`` as is.
        obs: ``[N, O]`` start states (one per sequence; a planner expands its single current
            state to ``[N, O]``).
        actions: ``[N, H, A]`` open-loop action sequences; or ``None`` with ``policy``.
        reward_fn: ``reward_fn(obs, act, next_obs) -> [M]`` (needed unless ``step_fn`` returns
            rewards).
        termination_fn: ``termination_fn(obs, act, next_obs) -> bool [M]``; ``None``: never ends.
        policy: closed-loop ``policy(obs [M, O]) -> act [M, A]`` (then ``horizon`` is required).
        gamma: discount; the reward of step ``t`` (0-based) is weighted ``gamma**t``
            (``1.0``: undiscounted sum).
        particles: ``P`` copies of every sequence (stochastic models); returns are averaged.
        terminal_value: adds ``gamma**H * value(obs_H)`` for particles still alive.

    Once a particle terminates, it earns no further reward (the reward of the terminating step
    itself counts) and its state is frozen at the terminal state.
    """
    if (actions is None) == (policy is None):
        raise ValueError("pass exactly one of `actions` ([N, H, A]) and `policy`")
    n, obs_dim = obs.shape
    if actions is not None:
        if actions.dim() != 3 or actions.shape[0] != n:
            raise ValueError(f"actions must be [N={n}, H, A], got {tuple(actions.shape)}")
        if horizon is not None and horizon != actions.shape[1]:
            raise ValueError(f"horizon={horizon} but actions have H={actions.shape[1]}")
        horizon = actions.shape[1]
        # [N, H, A] -> [H, N * P, A]: step t reads one contiguous slice
        acts = actions.transpose(0, 1)
        if particles > 1:
            acts = acts.repeat_interleave(particles, dim=1)
    elif horizon is None:
        raise ValueError("a policy rollout needs `horizon`")
    m = n * particles
    x = obs.repeat_interleave(particles, dim=0) if particles > 1 else obs
    ret = x.new_zeros(m)
    alive = torch.ones(m, dtype=torch.bool, device=x.device)
    discount = 1.0
    for t in range(horizon):
        a = acts[t] if actions is not None else policy(x)  # type: ignore[misc]
        out = step_fn(x, a)
        if isinstance(out, tuple):
            nxt, r = out
        else:
            nxt, r = out, None
        if r is None:
            if reward_fn is None:
                raise ValueError("step_fn returned no reward: pass `reward_fn`")
            r = reward_fn(x, a, nxt)
        ret = ret + discount * torch.where(alive, r, torch.zeros_like(r))
        if termination_fn is not None:
            done = termination_fn(x, a, nxt).reshape(m).bool()
            nxt = torch.where(alive.unsqueeze(-1), nxt, x)
            alive = alive & ~done
        x = nxt
        discount *= gamma
    if terminal_value is not None:
        v = terminal_value(x).reshape(m)
        ret = ret + discount * torch.where(alive, v, torch.zeros_like(v))
    per_particle = ret.view(n, particles)
    return RolloutResult(
        returns=per_particle.mean(dim=1),
        particle_returns=per_particle,
        final_obs=x.view(n, particles, obs_dim),
        alive=alive.view(n, particles),
    )


def score_trajectories(
    obs_seq: torch.Tensor,
    actions: torch.Tensor,
    *,
    reward_fn: RewardFn,
    termination_fn: TerminationFn | None = None,
    gamma: float = 1.0,
) -> torch.Tensor:
    """``[N]`` returns of given trajectories, with :func:`rollout`'s termination rule.

    For models that produce whole trajectories at once (the MuJoCo simulator):
    ``obs_seq [N, H + 1, O]`` (``obs_seq[:, 0]`` the start), ``actions [N, H, A]``. The reward of
    the terminating step counts; later steps earn nothing.
    """
    x, nxt = obs_seq[:, :-1], obs_seq[:, 1:]
    r = reward_fn(x, actions, nxt)  # [N, H]
    h = actions.shape[1]
    disc = gamma ** torch.arange(h, device=r.device, dtype=r.dtype)
    if termination_fn is not None:
        done = termination_fn(x, actions, nxt).bool()  # [N, H]
        # alive before step t: no termination at steps < t
        before = torch.cumsum(done.int(), dim=1) - done.int()
        r = torch.where(before == 0, r, torch.zeros_like(r))
    return (r * disc).sum(dim=1)
