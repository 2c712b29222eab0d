"""How often undirected exploration reaches a sparse goal: the share of episodes that end before
the time limit under uniform random actions, under random actions repeated a fixed number of
steps, and under temporally-extended random actions (ez-greedy's durations, ``n ~ zeta(mu)``;
Dabney et al. 2021), the rule ``muzero``'s ``eps_greedy`` + ``eps_duration_mu`` follows at
``eps = 1``. On Acrobot-v1 this is what separates a seed that sees the goal from one that never
does (docs/algorithms/muzero.md).

On Acrobot-v1 it also prints what holding each action costs a good policy: the mean return of a
hand-written bang-bang controller (torque ``sign(dtheta2 + c * dtheta1)``, the best gain ``c`` of
a grid) whose decisions are held ``repeat`` steps, as ``muzero``'s ``action_repeat`` holds them.
It is a reference a learned policy can beat, not the optimum::

    python -m benchmark.perf.exploration --task acrobot --episodes 100
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import numpy as np

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


def bang_bang_return(repeat: int, gain: float, episodes: int, seed: int) -> float:
    """Mean Acrobot-v1 return of ``+1`` torque when ``dtheta2 + gain * dtheta1 > 0``, else ``-1``,
    each decision held ``repeat`` steps (observation: cos/sin of both angles, then the two
    angular velocities)."""
    env = TASKS["acrobot"].resolve().make_env()

    def choose(obs):
        return (2 if obs[5] + gain * obs[4] > 0 else 0), repeat

    return float(
        np.mean([_held_episode(env, seed * 100_000 + ep, choose)[0] for ep in range(episodes)])
    )


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
        print(f"{f'{k} step(s)':<24} {gain:>10g} {mean:>12.1f}")


if __name__ == "__main__":
    main()
