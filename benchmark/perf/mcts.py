"""One MuZero move: the batched tree search at ``--sims`` simulations with the ``muzero``
plugin's network (muzero-general's CartPole sizes unless ``--set`` says otherwise), in ms per
move, simulations per second, and the share of the network's calls in it, for ``--trees`` trees
searched together (evaluation episodes or self-play environments run side by side)::

    python -m benchmark.perf.mcts                       # 50 simulations, 1 and 8 trees, 1 thread
    python -m benchmark.perf.mcts --sims 25 --trees 1 16
    python -m benchmark.perf.mcts --set gumbel=true     # Gumbel MuZero's search
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from algorithms.api import RunContext, apply_overrides
from algorithms.muzero import MuZeroAgent, MuZeroConfig
from algorithms.planners.mcts import search
from envs import TASKS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="cartpole")
    p.add_argument("--sims", type=int, default=50)
    p.add_argument("--trees", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--moves", type=int, default=50, help="timed moves per row")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[], help="MuZeroConfig overrides, key=value")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = TASKS[args.task].resolve()
    extra = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = apply_overrides(MuZeroConfig(), {"num_simulations": args.sims, **extra})
    agent = MuZeroAgent(task, cfg, RunContext.from_seed(0))
    net = agent.net
    print(
        f"MuZero search, {args.task}, {args.sims} simulations, {args.threads} thread(s), torch "
        f"{torch.__version__}" + (f", {extra}" if extra else "")
    )
    print(f"{'trees':>5} {'ms/move':>8} {'sims/s':>9} {'network %':>9}")
    for b in args.trees:
        gen = torch.Generator().manual_seed(0)
        obs = torch.randn(b, task.obs_dim, generator=gen)
        net_s = 0.0

        def timed_recurrent(s, a):
            nonlocal net_s
            t = time.perf_counter()
            out = net.recurrent(s, a)
            net_s += time.perf_counter() - t
            return out

        def move(obs: torch.Tensor = obs) -> None:
            with torch.no_grad():
                s = net.represent(obs)
                logits, v = net.predict(s)
            search(timed_recurrent, s, logits, agent.search_cfg, noise=True, rng=agent.ctx.np_rng,
                   root_value=net.value(v))  # fmt: skip

        for _ in range(args.warmup):
            move()
        net_s = 0.0
        t0 = time.perf_counter()
        for _ in range(args.moves):
            move()
        total = time.perf_counter() - t0
        ms = 1e3 * total / args.moves
        print(f"{b:>5} {ms:8.2f} {b * args.sims / (total / args.moves):9.0f} "
              f"{100 * net_s / total:8.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
