"""How often undirected exploration reaches a sparse goal: the share of episodes that end before
the time limit under uniform random actions, under random actions repeated a fixed number of
steps, and under temporally-extended random actions (ez-greedy's durations, ``n ~ zeta(mu)``;
Dabney et al. 2021), the rule ``muzero``'s ``eps_greedy`` + ``eps_duration_mu`` follows at
``eps = 1``. On Acrobot-v1 this is what separates a seed that sees the goal from one that never
does (docs/algorithms/muzero.md).

On Acrobot-v1 it also prints what holding each action costs a good policy: the mean return of a
hand-written bang-bang controller (torque ``sign(dtheta2 + c * dtheta1)``, the best gain ``c`` of
a grid) whose decisions are held ``repeat`` steps, as ``muzero``'s ``action_repeat`` holds them.
It is a reference a learned policy can beat, not the optimum. ``--lookahead d`` adds a stronger
one: at every decision, each of the ``3^d`` sequences of ``d`` held decisions is tried on the
task's own equations (``envs.classic.acrobot.dynamics`` in float64, batched over episodes and
sequences) and then completed by the bang-bang controller to the goal or the time limit; the first
decision of the sequence that reaches the goal soonest is taken (a rollout policy, which does at
least as well as its base controller up to the model's float rounding)::

    python -m benchmark.perf.exploration --task acrobot --episodes 100 [--lookahead 3]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from envs import TASKS


def _held_episode(
    env: gym.Env, seed: int, choose: Callable[[np.ndarray], tuple[int, int]]
) -> tuple[float, bool]:
    """One episode from ``reset(seed=seed)`` whose actions come from ``choose(obs) -> (action,
    env steps to hold it)``, asked again once a hold runs out: ``(return, ended early)``."""
    obs, _ = env.reset(seed=seed)
    ret, action, left = 0.0, 0, 0
    while True:
        if left == 0:
            action, left = choose(obs)
        left -= 1
        obs, r, term, trunc, _ = env.step(action)
        ret += float(r)
        if term or trunc:
            return ret, bool(term)


def goal_rate(task_name: str, episodes: int, seed: int, repeat: int = 1, mu: float = 0.0):
    """``(share of episodes ending early, mean return)`` over ``episodes`` episodes of random
    discrete actions, each held ``repeat`` steps, or ``n ~ zeta(mu)`` steps when ``mu`` is set."""
    task = TASKS[task_name].resolve()
    env = task.make_env()
    rng = np.random.default_rng(seed)

    def choose(_obs):
        return int(rng.integers(task.act_dim)), int(rng.zipf(mu)) if mu else repeat

    runs = [_held_episode(env, seed * 100_000 + ep, choose) for ep in range(episodes)]
    return float(np.mean([early for _, early in runs])), float(np.mean([r for r, _ in runs]))


def _bang_bang(obs, gain: float):
    """Action ``2`` (+1 torque) where ``dtheta2 + gain * dtheta1 > 0``, else ``0``, for one
    observation (numpy) or a batch (torch, ``[..., 6] -> [...]``)."""
    return (obs[..., 5] + gain * obs[..., 4] > 0) * 2


def bang_bang_return(repeat: int, gain: float, episodes: int, seed: int) -> float:
    """Mean Acrobot-v1 return of ``+1`` torque when ``dtheta2 + gain * dtheta1 > 0``, else ``-1``,
    each decision held ``repeat`` steps (observation: cos/sin of both angles, then the two
    angular velocities)."""
    env = TASKS["acrobot"].resolve().make_env()

    def choose(obs):
        return int(_bang_bang(obs, gain)), repeat

    return float(
        np.mean([_held_episode(env, seed * 100_000 + ep, choose)[0] for ep in range(episodes)])
    )


def rollout_return(
    repeat: int, gain: float, lookahead: int, episodes: int, seed: int, limit: int = 500
) -> float:
    """Mean Acrobot-v1 return of the rollout policy over the bang-bang controller (module
    docstring), every decision held ``repeat`` steps, on the envs reset with ``seed * 100_000 +
    ep``: the candidates are simulated in one batch over episodes and sequences, the chosen
    decisions executed by the envs themselves."""
    from envs.classic import acrobot

    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1 decision, got {lookahead}")
    envs = [TASKS["acrobot"].resolve().make_env() for _ in range(episodes)]
    for ep, env in enumerate(envs):
        env.reset(seed=seed * 100_000 + ep)
    seqs = torch.tensor(list(itertools.product(range(3), repeat=lookahead)))  # [C, d]
    n_seq, eye = len(seqs), torch.eye(3, dtype=torch.float64)
    returns, steps = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    live = list(range(episodes))

    while live:
        th = torch.as_tensor(np.stack([envs[e].unwrapped.state for e in live]))  # [L, 4]
        c1, s1, c2, s2 = th[:, 0].cos(), th[:, 0].sin(), th[:, 1].cos(), th[:, 1].sin()
        x = torch.stack([c1, s1, c2, s2, th[:, 2], th[:, 3]], -1).repeat_interleave(n_seq, 0)
        left = torch.as_tensor(limit - steps[live]).repeat_interleave(n_seq)  # [L * C]
        plan = seqs.repeat(len(live), 1)  # [L * C, d]
        taken = torch.zeros(len(x), dtype=torch.long)
        reached = torch.zeros(len(x), dtype=torch.bool)
        for k in range(int(left.max())):
            if k % repeat == 0:
                i = k // repeat
                a = plan[:, i] if i < lookahead else _bang_bang(x, gain)
            active = ~reached & (k < left)
            if not bool(active.any()):
                break
            x = torch.where(active[:, None], acrobot.dynamics(x, eye[a]), x)
            taken += active
            reached |= active & acrobot.termination_fn(x, a, x)
        cost = torch.where(reached, taken, limit + 1).view(len(live), n_seq)
        first = seqs[cost.argmin(1), 0].tolist()
        still = []
        for e, action in zip(live, first, strict=True):
            for _ in range(repeat):
                _, r, term, trunc, _ = envs[e].step(action)
                returns[e] += float(r)
                steps[e] += 1
                if term or trunc:
                    break
            else:
                still.append(e)
        live = still
    return float(returns.mean())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="acrobot")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    p.add_argument("--mus", type=float, nargs="*", default=[2.0, 1.5])
    p.add_argument(
        "--held",
        type=int,
        nargs="*",
        default=[1, 2, 3, 4],
        help="Acrobot only: the decision lengths the bang-bang controller is run at",
    )
    p.add_argument("--gains", type=float, nargs="*", default=[-3, -2, -1.5, -1, -0.5, 0, 0.5])
    p.add_argument(
        "--lookahead",
        type=int,
        default=0,
        help="Acrobot only: also the rollout policy over the best bang-bang gain, trying every "
        "sequence of this many held decisions before it (0: not run)",
    )
    args = p.parse_args(argv)
    print(f"{args.task}: {args.episodes} episodes of random actions, seed {args.seed}")
    print(f"{'actions':<24} {'goal share':>10} {'mean return':>12}")
    rules = [(f"held {k} step(s)", k, 0.0) for k in args.repeats]
    rules += [(f"held n ~ zeta({mu:g})", 1, mu) for mu in args.mus]
    for label, k, mu in rules:
        share, mean = goal_rate(args.task, args.episodes, args.seed, repeat=k, mu=mu)
        print(f"{label:<24} {share:>10.0%} {mean:>12.1f}")
    if args.task != "acrobot":
        return
    print(f"\nbang-bang controller, {args.episodes} episodes, best gain of {args.gains}")
    print(f"{'decision held':<24} {'best gain':>10} {'mean return':>12}")
    for k in args.held:
        mean, gain = max((bang_bang_return(k, c, args.episodes, args.seed), c) for c in args.gains)
        line = f"{f'{k} step(s)':<24} {gain:>10g} {mean:>12.1f}"
        if args.lookahead > 0:
            roll = rollout_return(k, gain, args.lookahead, args.episodes, args.seed)
            line += f"   rollout over it, {args.lookahead} decisions ahead: {roll:.1f}"
        print(line)


if __name__ == "__main__":
    main()
