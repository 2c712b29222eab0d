"""Time PILCO's two costs on the cart-pole swing-up: one policy-optimization round (GP fit +
policy optimization, what :meth:`algorithms.pilco.PILCO.on_episode_end` does after a trial) at
given numbers of GP training pairs, and one moment-matched rollout (forward, and forward +
backward) at each size::

    python -m benchmark.perf.pilco                       # n = 30, 150, 300, 450; 1 thread
    python -m benchmark.perf.pilco --points 300 --threads 2 --policy-iterations 20
    python -m benchmark.perf.pilco --points 450 --max-points 300   # FITC, as the defaults

The data are transitions of the real env under uniform random actions held ``action_repeat``
steps (what the first random trial collects), ``--points`` of them. The round's time grows with
the iterations: ``--policy-iterations`` (default: the config's 150) caps the L-BFGS iterations,
each of which costs about 1.25 rollouts forward + backward on average (strong-Wolfe line search).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from algorithms.api import RunContext, Transition, apply_overrides
from algorithms.pilco import PILCO, PILCOConfig
from envs import TASKS


def collect(agent: PILCO, points: int, seed: int) -> None:
    """Feed the agent random episodes (each action held ``action_repeat`` env steps) until its
    data holds ``points`` control-step transitions."""
    env = agent.task.make_env()
    rng = np.random.default_rng(seed)
    k, done, episode = agent.cfg.action_repeat, 0, 0
    while done < points:
        obs, _ = env.reset(seed=episode)
        episode += 1
        n = min(agent.horizon, points - done)  # control steps of this episode
        for i in range(n * k):
            if i % k == 0:
                a = rng.uniform(agent.task.act_low, agent.task.act_high).astype(np.float32)
            nxt, r, *_ = env.step(a)
            agent.observe(Transition(obs, a, float(r), nxt, False, i == n * k - 1))
            obs = nxt
        done += n
    env.close()
    assert len(agent.control_steps()[0]) == points


def bench(args: argparse.Namespace, points: int) -> dict[str, float]:
    task = TASKS[args.task].resolve()
    overrides: dict = {"horizon": args.horizon, "gp_max_points": args.max_points}
    if args.policy_iterations is not None:
        overrides["policy_iterations"] = args.policy_iterations
    cfg = apply_overrides(PILCOConfig(), overrides)
    agent = PILCO(task, cfg, RunContext.from_seed(0))
    collect(agent, points, seed=0)
    t0 = time.perf_counter()
    fit = agent.fit_model()
    fit_s = time.perf_counter() - t0

    fwd, fwd_bwd, cpu = [], [], []
    params = agent.policy.parameters()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            agent.expected_costs().sum()
        fwd.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        j = agent.expected_costs().sum()
        torch.autograd.grad(j, params)
        fwd_bwd.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    c0 = time.process_time()
    opt = agent.optimize_policy()
    opt_cpu = time.process_time() - c0
    return {
        "points": points,
        "gp_fit_s": fit_s,
        "rollout_fwd_bwd_cpu_ms": 1e3 * statistics.median(cpu),
        "policy_opt_cpu_s": opt_cpu,
        "gp_basis": fit["gp_basis"],
        "rollout_fwd_ms": 1e3 * statistics.median(fwd),
        "rollout_fwd_bwd_ms": 1e3 * statistics.median(fwd_bwd),
        "policy_opt_s": opt["policy_opt_s"],
        "policy_evals": opt["policy_evals"],
        "round_s": fit_s + opt["policy_opt_s"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="cartpole_swingup")
    p.add_argument("--points", type=int, nargs="+", default=[30, 150, 300, 450])
    p.add_argument("--horizon", type=int, default=None, help="default: the task's")
    p.add_argument("--policy-iterations", type=int, default=None)
    p.add_argument(
        "--max-points",
        type=int,
        default=None,
        help="FITC above this many pairs (default: none, the full GP at every size)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"PILCO on {args.task}: horizon {args.horizon or TASKS[args.task].resolve().saturating_cost.horizon}, "
        f"threads {args.threads}, "
        f"policy iterations {args.policy_iterations or PILCOConfig.policy_iterations}"
    )
    print(  # wall times; "cpu" columns: this process's CPU time (what a shared machine hides)
        f"{'points':>6} {'basis':>5} {'gp fit s':>9} {'fwd ms':>8} {'fwd+bwd ms':>11} "
        f"{'(cpu ms)':>9} {'policy opt s':>13} {'(cpu s)':>8} {'evals':>6} {'round s':>8}"
    )
    for n in args.points:
        r = bench(args, n)
        print(
            f"{n:>6} {r['gp_basis']:>5.0f} {r['gp_fit_s']:>9.2f} {r['rollout_fwd_ms']:>8.1f} "
            f"{r['rollout_fwd_bwd_ms']:>11.1f} {r['rollout_fwd_bwd_cpu_ms']:>9.1f} "
            f"{r['policy_opt_s']:>13.1f} {r['policy_opt_cpu_s']:>8.1f} "
            f"{r['policy_evals']:>6.0f} {r['round_s']:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
