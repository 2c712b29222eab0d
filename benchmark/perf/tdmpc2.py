"""One env step of ``tdmpc2``: planning (MPPI in latent space, policy proposals included) and one
update, in milliseconds, with the share of each, at ``model_size`` 1 and 5 (fp32 and bf16).

The agent is built on ``--init-steps`` random transitions of the task (marked past its seed
phase, so it plans and updates as from then on; untrained weights cost the same as trained
ones). ``--repeats`` blocks of ``--iters`` calls are timed, medians printed::

    python -m benchmark.perf.tdmpc2                        # Pendulum, 1 thread
    python -m benchmark.perf.tdmpc2 --task dmc:cartpole-swingup --sizes 1
    python -m benchmark.perf.tdmpc2 --set num_samples=256
"""

from __future__ import annotations

import argparse

import torch
import yaml

from algorithms.api import RunContext, apply_overrides
from algorithms.tdmpc2 import TDMPC2Agent, TDMPC2Config
from benchmark.perf import median_ms, random_transitions
from envs import TASKS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="pendulum")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    p.add_argument("--init-steps", type=int, default=1000, help="random transitions")
    p.add_argument("--iters", type=int, default=5, help="calls per timed block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="overrides, key=value")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = TASKS[args.task].resolve()
    data = random_transitions(task, args.init_steps, args.seed)
    obs = data[-1].next_obs
    extra = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    print(
        f"one tdmpc2 env step, {args.task}, {args.threads} thread(s), torch {torch.__version__}"
        + (f", {extra}" if extra else "")
    )
    print(f"{'size':>4} {'dtype':>5} {'plan ms':>8} {'update ms':>9} {'step ms':>8} {'plan %':>6}")
    for size in args.sizes:
        for bf16 in (False, True):
            cfg = apply_overrides(TDMPC2Config(), {"model_size": size, "bf16": bf16, **extra})
            agent = TDMPC2Agent(task, cfg, RunContext.from_seed(args.seed))
            for tr in data:
                agent.observe(tr)
            agent.pretrained = True
            timing = {"warmup": args.warmup, "repeats": args.repeats, "iters": args.iters}
            plan = median_ms(lambda a=agent: a.act(obs, explore=True), **timing)
            starts = agent.replay.full_starts(cfg.horizon)  # as ``update`` computes them
            update = median_ms(lambda a=agent, s=starts: a._update(s), **timing)
            step = plan + update
            print(
                f"{size:>4} {'bf16' if bf16 else 'fp32':>5} {plan:8.1f} {update:9.1f} "
                f"{step:8.1f} {100 * plan / step:5.0f}%"
            )


if __name__ == "__main__":
    main()
