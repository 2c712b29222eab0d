"""Microbenchmark of one SAC gradient step (critics + actor + temperature + target update).

Prints milliseconds per update and the achieved GFLOP/s (matmul FLOPs of one update, counted once
with ``torch.utils.flop_counter.FlopCounterMode``), in float32 and under bfloat16 autocast::

    python -m benchmark.perf.sac                      # Pendulum sizes, 1 thread, batch 256
    python -m benchmark.perf.sac --obs-dim 17 --act-dim 6 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from algorithms.learners.sac import SACLearner, SACLearnerConfig
from algorithms.replay.buffer import Batch


def make_batch(obs_dim: int, act_dim: int, batch: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        obs=torch.randn(batch, obs_dim, generator=g).to(device),
        act=(torch.rand(batch, act_dim, generator=g) * 2 - 1).to(device),
        reward=torch.randn(batch, generator=g).to(device),
        next_obs=torch.randn(batch, obs_dim, generator=g).to(device),
        terminated=torch.zeros(batch).to(device),
    )


def bench(args: argparse.Namespace, bf16: bool) -> dict[str, float]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = SACLearnerConfig(hidden=args.hidden, layers=args.layers, bf16=bf16)
    ones = np.ones(args.act_dim, np.float32)
    learner = SACLearner(
        args.obs_dim, args.act_dim, -ones, ones, cfg, device, torch.Generator().manual_seed(0)
    )
    batch = make_batch(args.obs_dim, args.act_dim, args.batch, device)
    with FlopCounterMode(display=False) as counter:
        learner.update(batch)
    flops = counter.get_total_flops()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        learner.update(batch)
    sync()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.iters):
            learner.update(batch)
        sync()
        times.append((time.perf_counter() - t0) / args.iters)
    best, median = min(times), statistics.median(times)
    return {
        "ms_median": 1e3 * median,
        "ms_best": 1e3 * best,
        "mflop": flops / 1e6,
        "gflops_median": flops / median / 1e9,
        "gflops_best": flops / best / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=3, help="3 = Pendulum, 17 = HalfCheetah")
    p.add_argument("--act-dim", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--iters", type=int, default=100, help="updates per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast row")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(
        f"SAC update: batch {args.batch}, obs {args.obs_dim}, act {args.act_dim}, "
        f"{args.layers}x{args.hidden} MLPs, {args.device}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}"
    )
    print(
        f"{'precision':<10} {'ms/update':>10} {'(best)':>8} {'MFLOP':>8} {'GFLOP/s':>8} {'(best)':>8}"
    )
    for name, bf16 in [("fp32", False)] + ([] if args.no_bf16 else [("bf16", True)]):
        r = bench(args, bf16)
        print(
            f"{name:<10} {r['ms_median']:>10.3f} {r['ms_best']:>8.3f} {r['mflop']:>8.1f} "
            f"{r['gflops_median']:>8.1f} {r['gflops_best']:>8.1f}"
        )


if __name__ == "__main__":
    main()
