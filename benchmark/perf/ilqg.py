"""Time one iLQG MPC step (``algorithms.ilqg``) per derivative source.

Each row runs the plugin on a real episode of its task and times ``act`` (one receding-horizon
re-optimization: a forward pass from the current state plus up to ``--iterations`` iLQG
iterations, each a derivative evaluation, a backward pass and a line search); the first step of
the episode (several cold starts, ``initial_iterations``) and ``--warmup`` more are excluded.
Prints the median wall time (and CPU time) per MPC step over ``--steps`` steps and the mean
number of iterations that ran (iLQG stops early once converged; ``--fixed-iterations`` turns the
stopping tests off so that every step runs exactly ``--iterations``)::

    python -m benchmark.perf.ilqg                       # 1 thread, every source
    python -m benchmark.perf.ilqg --sources cartpole --horizon 40 --iterations 5

Sources:

- ``pendulum``, ``cartpole``: autograd (``torch.func``) of the task's torch dynamics;
- ``double_pendulum``: InvertedDoublePendulum's MuJoCo simulator, finite-difference derivatives
  (RK4 model: batched central differences of the env step; ``mjd_transitionFD`` otherwise);
- ``pendulum_learned``: the 7 x (4 x 200) ensemble's mean (5 elites), fitted for a few epochs on
  one episode of random transitions, differentiated by autograd.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from algorithms.api import RunContext, Transition, apply_overrides
from algorithms.ilqg import ILQG, ILQGConfig
from envs import TASKS

SOURCES = {
    "pendulum": ("pendulum", {"oracle": True}),
    "cartpole": ("cartpole_swingup", {"oracle": True}),
    "double_pendulum": ("inverted_double_pendulum", {"oracle": True}),
    "pendulum_learned": ("pendulum", {"oracle": False, "model.max_epochs": 5}),
}


def bench(source: str, args: argparse.Namespace) -> dict[str, float]:
    task_name, overrides = SOURCES[source]
    task = TASKS[task_name].resolve()
    overrides = {**overrides, "horizon": args.horizon, "iterations": args.iterations}
    if args.fixed_iterations:
        overrides.update(tol_rel=0.0, tol_grad=0.0)
    cfg = apply_overrides(ILQGConfig(), overrides)
    ctx = RunContext.from_seed(0, total_steps=10_000)
    agent = ILQG(task, cfg, ctx)
    env = task.make_env()
    if agent.data is not None:  # one random episode, then a fit: the state a run plans in
        obs, _ = env.reset(seed=1)
        agent.reset(explore=True)
        for _ in range(task.max_episode_steps):
            a = agent.random_action()
            nxt, r, term, trunc, _ = env.step(a)
            agent.observe(Transition(obs, a, float(r), nxt, term, trunc))
            agent.update()
            obs = nxt
    obs, info = env.reset(seed=0)
    agent.reset(explore=False)
    wall, cpu, iters = [], [], []
    for i in range(1 + args.warmup + args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        action = agent.act(obs, explore=False, info=info)
        t1, c1 = time.perf_counter(), time.process_time()
        if i > args.warmup:
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
            assert agent.last_result is not None
            iters.append(agent.last_result.iterations)
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            obs, info = env.reset(seed=i)
            agent.reset(explore=False)
    env.close()
    return {
        "ms": statistics.median(wall) * 1e3,
        "cpu_ms": statistics.median(cpu) * 1e3,
        "iterations": float(np.mean(iters)),
        "line_search": agent.options.line_search,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", default=",".join(SOURCES), help=f"any of {', '.join(SOURCES)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--horizon", type=int, default=ILQGConfig.horizon)
    p.add_argument("--iterations", type=int, default=ILQGConfig.iterations)
    p.add_argument("--steps", type=int, default=20, help="timed MPC steps (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--fixed-iterations", action="store_true", help="no early stopping")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"iLQG MPC step: horizon {args.horizon}, up to {args.iterations} iterations"
        f"{' (fixed)' if args.fixed_iterations else ''}, median of {args.steps} steps; torch "
        f"{torch.__version__}, {args.threads} CPU thread(s)"
    )
    for source in args.sources.split(","):
        r = bench(source, args)
        print(
            f"  {source:18s} {r['ms']:8.1f} ms/step (CPU {r['cpu_ms']:.1f} ms)  "
            f"{r['iterations']:.2f} iterations/step  line search {r['line_search']}"
        )


if __name__ == "__main__":
    main()
