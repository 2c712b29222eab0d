"""Profile of one MBPO env step at steady state: where the time goes, per env step.

Fills the real buffer with ``--init-steps`` uniform random env steps, fits the model once (warm-up,
not timed), then runs ``--steps`` env steps (default 250: one model-training period) of the
``mbpo`` plugin and times each phase, amortized per env step:

- ``env + act``: the policy's action and ``env.step``;
- ``model training``: one refit per ``model.train_every`` steps (holdout early stopping);
- ``model rollouts``: ``rollouts_per_step * model.train_every`` branched rollouts per refit;
- ``SAC updates``: ``G`` gradient steps per env step (minibatch sampling included).

Achieved GFLOP/s are the matmul FLOPs (``torch.utils.flop_counter``) over the measured time. The
peer's figures come from ``benchmark/perf/peers/mbrl_lib_mbpo_step.py`` under the same
hyperparameters::

    python -m benchmark.perf.mbpo --task inverted_pendulum --threads 2
    python -m benchmark.perf.mbpo --task inverted_pendulum --threads 2 --bf16
    python -m benchmark.perf.mbpo --task hopper --threads 2 --set updates_per_step=40 sac.hidden=512
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from algorithms.api import RunContext, Transition, apply_overrides
from algorithms.mbpo import MBPOAgent, MBPOConfig
from algorithms.replay.buffer import Batch
from envs import TASKS


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def profile(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(args.seed)
    task = TASKS[args.task].resolve()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    overrides.update({"initial_random_steps": args.init_steps})
    if args.bf16:
        overrides.update({"sac.bf16": True, "model.bf16": True})
    cfg = apply_overrides(MBPOConfig(), overrides)
    ctx = RunContext.from_seed(args.seed, device=args.device)
    agent = MBPOAgent(task, cfg, ctx)
    c = agent.cfg
    env = task.make_env()
    obs, info = env.reset(seed=args.seed)
    episode = 0

    def env_step(explore_policy: bool) -> None:
        nonlocal obs, info, episode
        a = agent.act(obs, explore=True, info=info) if explore_policy else agent.random_action()
        nxt, r, term, trunc, info = env.step(a)
        agent.observe(Transition(obs, a, float(r), nxt, bool(term), bool(trunc)))
        obs = nxt
        if term or trunc:
            episode += 1
            obs, info = env.reset(seed=args.seed + episode)

    for _ in range(args.init_steps):
        env_step(False)
    # warm-up (not timed): the first fit, rollouts and a few SAC updates
    fit0 = agent.data.fit()
    agent.rollout_model()
    agent.train_policy()

    every = c.model.train_every
    assert c.updates_per_step is not None and every is not None
    t = {"env + act": 0.0, "model training": 0.0, "model rollouts": 0.0, "SAC updates": 0.0}
    model_batches, fit_epochs = 0, []
    for i in range(args.steps):
        t0 = time.perf_counter()
        env_step(True)
        t1 = time.perf_counter()
        t["env + act"] += t1 - t0
        if i % every == every - 1:
            fit = agent.data.fit()
            t2 = time.perf_counter()
            agent.rollout_model()
            t3 = time.perf_counter()
            t["model training"] += t2 - t1
            t["model rollouts"] += t3 - t2
            n_train = int(len(agent.buffer) * (1 - c.model.holdout_ratio))
            model_batches += int(fit["model_epochs"]) * math.ceil(n_train / c.model.batch_size)
            fit_epochs.append(int(fit["model_epochs"]))
            t1 = t3
        agent.train_policy()
        t["SAC updates"] += time.perf_counter() - t1
    n = args.steps
    out = {k: 1e3 * v / n for k, v in t.items()}
    out["total"] = sum(out.values())
    # FLOPs: one SAC update, one model minibatch (forward + backward)
    b = agent.sample_batches(1)
    sac_flops = _flops(lambda: agent.learner.update(Batch(*(x[0] for x in b))))
    e, bs, dev = c.model.members, c.model.batch_size, agent.model.device
    x = torch.randn(e, bs, agent.model.in_dim, device=dev)
    y = torch.randn(e, bs, agent.model.out_dim, device=dev)
    model_flops = _flops(lambda: agent.model.loss(x, y)[0].backward())
    sac_s = t["SAC updates"] / (n * c.updates_per_step)
    out["ms_per_sac_update"] = 1e3 * sac_s
    out["sac_gflops"] = sac_flops / sac_s / 1e9
    out["model_gflops"] = (
        model_flops * model_batches / t["model training"] / 1e9 if t["model training"] else 0.0
    )
    out["fit0_epochs"] = fit0["model_epochs"]
    out["fit_epochs"] = float(np.mean(fit_epochs)) if fit_epochs else 0.0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["G"] = float(c.updates_per_step)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="inverted_pendulum")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--init-steps", type=int, default=5000, help="random steps before timing")
    p.add_argument("--steps", type=int, default=250, help="timed env steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for SAC and the model")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="MBPOConfig overrides, key=value (dotted paths: sac.lr=1e-3 model.hidden=400)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    r = profile(args)
    print(
        f"MBPO env step, {args.task}, G={r['G']:.0f}, {'bf16' if args.bf16 else 'fp32'}, "
        f"{args.device}, {torch.get_num_threads()} thread(s), {args.init_steps} real transitions, "
        f"{args.steps} timed steps, torch {torch.__version__}"
    )
    print(f"{'phase':<16} {'ms/env step':>12} {'share':>7}")
    for k in ("env + act", "model training", "model rollouts", "SAC updates", "total"):
        print(f"{k:<16} {r[k]:>12.2f} {r[k] / r['total']:>7.1%}")
    print(
        f"SAC update {r['ms_per_sac_update']:.2f} ms ({r['sac_gflops']:.0f} GFLOP/s); model "
        f"training {r['model_gflops']:.0f} GFLOP/s, {r['fit_epochs']:.0f} epochs per fit (warm-up "
        f"fit {r['fit0_epochs']:.0f}); "
        f"peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
