"""Time one PETS planning step (a full CEM optimization under the learned ensemble).

Defaults are the settings of the side-by-side with mbrl-lib (its PETS cart-pole agent, timed by
``benchmark/perf/peers/mbrl_lib_planning_step.py`` in the peer's own venv): ensemble of 7 Gaussian MLPs
with 4 hidden layers of 200 and 5 elites, population 500, horizon 15, 5 CEM iterations, 20
particles, TS-inf, on the cart-pole swing-up. Prints milliseconds per planning step and the
achieved GFLOP/s, in float32 and with the bf16 inference path (``model.bf16``), on the CPU with
``--threads`` threads and on CUDA when available::

    python -m benchmark.perf.planning                 # 2 threads, fp32 and bf16, + CUDA if any
    python -m benchmark.perf.planning --threads 1 --population 400 --horizon 25

FLOPs are counted like the peer script: only the MLP matmuls, ``population * particles`` rows per
model step (each row goes through one member), ``horizon * iterations`` model steps, ``2 * MACs``
of one member's forward. The model is fitted for one epoch on random transitions so that its
normalizers and elites are in the state a run plans with (timing does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from algorithms.api import RunContext, apply_overrides
from algorithms.pets import PETS, PETSConfig
from envs import TASKS


def model_flops(args: argparse.Namespace, obs_dim: int, act_dim: int, extra_in: int) -> float:
    """Matmul FLOPs of one planning step (see the module docstring). ``extra_in``: model inputs
    beyond ``obs_dim`` (one per angle's sin/cos pair, minus the dropped reward-only dims)."""
    h, inp, out = args.hidden, obs_dim + extra_in + act_dim, 2 * obs_dim
    macs = inp * h + (args.layers - 1) * h * h + h * out
    rows = args.population * args.particles * args.horizon * args.iterations
    return 2.0 * macs * rows


def bench(args: argparse.Namespace, device: str, bf16: bool) -> dict[str, float]:
    task = TASKS[args.task].resolve()
    cfg = apply_overrides(
        PETSConfig(),
        {
            "model.members": args.members,
            "model.elites": args.elites_model,
            "model.hidden": args.hidden,
            "model.layers": args.layers,
            "population": args.population,
            "elites": max(1, args.population // 10),
            "horizon": args.horizon,
            "iterations": args.iterations,
            "particles": args.particles,
            "propagation": args.propagation,
            "epsilon": 0.0,  # always run every iteration
            "model.bf16": bf16,
        },
    )
    agent = PETS(task, cfg, RunContext.from_seed(0, device=torch.device(device)))
    rng = np.random.default_rng(0)
    n = 1000
    obs = rng.normal(size=(n, task.obs_dim)).astype(np.float32)
    act = rng.uniform(task.act_low, task.act_high, (n, task.act_dim)).astype(np.float32)
    nxt = obs + 0.05 * rng.normal(size=obs.shape).astype(np.float32)
    assert agent.ensemble is not None
    agent.ensemble.fit(obs, act, nxt, rng=rng, max_epochs=1)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    state = np.zeros(task.obs_dim, np.float32)
    for _ in range(args.warmup):
        agent.plan(state)
    sync()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        agent.plan(state)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    flops = model_flops(
        args, task.obs_dim, task.act_dim, len(task.angle_dims) - len(task.reward_only_dims)
    )
    return {"ms": med * 1e3, "mean_ms": statistics.mean(times) * 1e3, "gflops": flops / med / 1e9}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cartpole_swingup")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--members", type=int, default=7)
    p.add_argument("--elites-model", type=int, default=5, help="elite members that predict")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--horizon", type=int, default=15)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--particles", type=int, default=20)
    p.add_argument("--propagation", default="tsinf", choices=["ts1", "tsinf", "mean"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA rows")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"PETS planning step on {args.task}: ensemble {args.members} x ({args.layers}x"
        f"{args.hidden}), {args.elites_model} elites, population {args.population}, horizon "
        f"{args.horizon}, {args.iterations} iterations, {args.particles} particles "
        f"({args.propagation}); torch {torch.__version__}, {args.threads} CPU threads"
    )
    devices = ["cpu"]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append("cuda")
    for device in devices:
        for bf16 in (False, True):
            r = bench(args, device, bf16)
            name = f"{device} {'bf16' if bf16 else 'fp32'}"
            print(
                f"  {name:10s} {r['ms']:9.1f} ms/step (mean {r['mean_ms']:.1f})"
                f"  {r['gflops']:7.1f} GFLOP/s"
            )


if __name__ == "__main__":
    main()
