"""Batched model rollouts: the returns of many action sequences or a policy in one pass
(:func:`rollout`, what planners score), and the imagined trajectories themselves
(:func:`imagine_steps`, :func:`imagine`: what MBPO, Dyna and value expansion learn from).

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

from collections.abc import Callable, Iterator
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


def model_step(
    step_fn: StepFn, obs: torch.Tensor, act: torch.Tensor, reward_fn: RewardFn | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One model step: ``next_obs [M, O]`` and ``reward [M]`` (the model's reward head where it
    has one, else ``reward_fn(obs, act, next_obs)``)."""
    out = step_fn(obs, act)
    nxt, reward = out if isinstance(out, tuple) else (out, None)
    if reward is None:
        if reward_fn is None:
            raise ValueError("step_fn returned no reward: pass `reward_fn`")
        reward = reward_fn(obs, act, nxt)
    return nxt, reward


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
        nxt, r = model_step(step_fn, x, a, reward_fn)
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


class ImaginedStep(NamedTuple):
    """One step of :func:`imagine_steps` over the ``M`` rollouts still alive at that step."""

    obs: torch.Tensor
    """``[M, O]``."""
    act: torch.Tensor
    """``[M, A]``."""
    reward: torch.Tensor
    """``[M]``: the model's reward head, else the task's ``reward_fn``."""
    next_obs: torch.Tensor
    """``[M, O]``."""
    terminated: torch.Tensor
    """``[M]`` bool: the step ended its rollout (the task's ``termination_fn``)."""
    rows: torch.Tensor
    """``[M]`` long: the start state (``0..N-1``) each row continues."""


def imagine_steps(
    step_fn: StepFn,
    obs: torch.Tensor,
    policy: PolicyFn,
    horizon: int,
    *,
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
) -> Iterator[ImaginedStep]:
    """Roll ``N`` start states ``obs [N, O]`` ``horizon`` steps under ``policy``, one
    :class:`ImaginedStep` per step, **compacted**: a rollout that terminates leaves the batch, so
    each step runs the model and the policy on the live rows only (one batched call each) and
    their random draws are sized by the live count. Stops early when every rollout has ended.

    A step function that holds per-row state (:class:`~algorithms.planners.models.SimulatorStep`)
    has a ``compact(keep [M] bool)`` method, called whenever rows leave.

    A generator, so a caller that streams the steps into a buffer (MBPO: ``N`` = 100k start
    states) never holds a whole ``[H, N, ...]`` trajectory; :func:`imagine` stacks them.
    Keeps the autograd graph (wrap the call in ``no_grad`` to generate data).
    """
    rows = torch.arange(obs.shape[0], device=obs.device)
    for _ in range(horizon):
        act = policy(obs)
        nxt, reward = model_step(step_fn, obs, act, reward_fn)
        if termination_fn is None:
            term = torch.zeros(len(obs), dtype=torch.bool, device=obs.device)
        else:
            term = termination_fn(obs, act, nxt).reshape(-1).bool()
        yield ImaginedStep(obs, act, reward, nxt, term, rows)
        if bool(term.any()):
            keep = ~term
            obs, rows = nxt[keep], rows[keep]
            compact = getattr(step_fn, "compact", None)
            if compact is not None:  # a step function holding per-row state drops these rows
                compact(keep)
            if len(obs) == 0:
                return
        else:
            obs = nxt


class Imagined(NamedTuple):
    """Imagined trajectories of ``N`` start states over ``H`` steps, padded past termination.

    ``mask[t, n]`` is True where step ``t`` of rollout ``n`` happened (it had not terminated
    before ``t``). Past its end a rollout's ``obs`` stays at its terminal state and its ``act``,
    ``reward`` are zero, so ``(mask * reward)`` sums and masked losses need no further care.
    """

    obs: torch.Tensor
    """``[H + 1, N, O]``: ``obs[0]`` the start states, ``obs[t + 1]`` the state after step t."""
    act: torch.Tensor
    """``[H, N, A]``."""
    reward: torch.Tensor
    """``[H, N]``."""
    terminated: torch.Tensor
    """``[H, N]`` bool: step ``t`` ended rollout ``n``."""
    mask: torch.Tensor
    """``[H, N]`` bool: step ``t`` of rollout ``n`` happened."""


def imagine(
    step_fn: StepFn,
    obs: torch.Tensor,
    policy: PolicyFn,
    horizon: int,
    *,
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
) -> Imagined:
    """:func:`imagine_steps` stacked into padded ``[H, N, ...]`` tensors with a mask (value
    expansion's targets: MVE/STEVE). Differentiable where the steps are (scatter by
    ``index_copy``); the same random draws as :func:`imagine_steps`."""
    n = obs.shape[0]
    states, acts, rewards, terms, masks = [obs], [], [], [], []
    last = obs
    for step in imagine_steps(
        step_fn, obs, policy, horizon, reward_fn=reward_fn, termination_fn=termination_fn
    ):
        rows = step.rows
        last = last.index_copy(0, rows, step.next_obs)
        states.append(last)
        acts.append(step.act.new_zeros(n, step.act.shape[-1]).index_copy(0, rows, step.act))
        rewards.append(step.reward.new_zeros(n).index_copy(0, rows, step.reward))
        term = torch.zeros(n, dtype=torch.bool, device=obs.device)
        terms.append(term.index_copy(0, rows, step.terminated))
        masks.append(torch.zeros_like(term).index_fill(0, rows, True))
    for _ in range(horizon - len(acts)):  # every rollout ended early: pad the remaining steps
        states.append(last)
        acts.append(torch.zeros_like(acts[-1]))
        rewards.append(torch.zeros_like(rewards[-1]))
        terms.append(torch.zeros_like(terms[-1]))
        masks.append(torch.zeros_like(masks[-1]))
    return Imagined(
        obs=torch.stack(states),
        act=torch.stack(acts),
        reward=torch.stack(rewards),
        terminated=torch.stack(terms),
        mask=torch.stack(masks),
    )
