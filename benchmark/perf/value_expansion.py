"""One critic-and-actor update of ``sac``, ``mve`` and ``steve`` at the same batch size, on a task's
real data with a fitted model: milliseconds per update (target computation included) and the
ratio to SAC's update. Issue 14's bar: one STEVE update at most 4x one SAC update.

Each agent is built on the same ``--init-steps`` random transitions of the task (the model fitted
once, not timed); then ``--repeats`` blocks of ``--iters`` updates are timed
(:meth:`~algorithms.agents.model_based_sac.ModelBasedSAC.train_policy` with one update per call;
SAC's update is the same learner on a real minibatch without model targets)::

    python -m benchmark.perf.value_expansion                          # InvertedPendulum, 1 thread
    python -m benchmark.perf.value_expansion --task hopper --threads 2
    python -m benchmark.perf.value_expansion --set steve.sac.critics=4  # STEVE's paper form
"""

from __future__ import annotations

import argparse

import torch
import yaml

from algorithms import get_algorithm
from algorithms.agents.model_based_sac import ModelBasedSAC
from algorithms.api import RunContext, Transition, apply_overrides
from benchmark.perf import median_ms, random_transitions
from envs import TASKS


def build(name: str, task, args: argparse.Namespace, data: list[Transition]) -> ModelBasedSAC:
    """A fitted ``name`` agent (``mve``, ``steve``; ``sac``: MVE at horizon 0, SAC's one-step
    target through the same code path) on ``data``."""
    algo = "mve" if name == "sac" else name
    cls = get_algorithm(algo)
    overrides = {"initial_random_steps": len(data), "updates_per_step": 1}
    if name == "sac":
        overrides["horizon"] = 0
    for kv in args.set:
        key, value = kv.split("=", 1)
        head, _, rest = key.partition(".")
        if head == name:
            overrides[rest] = yaml.safe_load(value)
    cfg = cls.resolve_config(task, apply_overrides(cls.Config(), overrides))
    agent = cls(task, cfg, RunContext.from_seed(args.seed))
    assert isinstance(agent, ModelBasedSAC)
    for tr in data:
        agent.observe(tr)
    agent.data.fit()
    return agent


def time_updates(agent: ModelBasedSAC, args: argparse.Namespace) -> float:
    """Median milliseconds per update."""
    return median_ms(agent.train_policy, warmup=args.warmup, repeats=args.repeats, iters=args.iters)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="inverted_pendulum")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init-steps", type=int, default=2000, help="random transitions")
    p.add_argument("--iters", type=int, default=20, help="updates per timed block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="overrides, algo.key=value")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = TASKS[args.task].resolve()
    data = random_transitions(task, args.init_steps, args.seed)
    print(
        f"one update, {args.task}, batch 256, {args.threads} thread(s), "
        f"torch {torch.__version__}, {args.init_steps} real transitions"
    )
    base = None
    for name in ("sac", "mve", "steve"):
        agent = build(name, task, args, data)
        ms = time_updates(agent, args)
        base = base or ms
        extra = ""
        if name != "sac":
            cfg = agent.cfg
            critics = agent.learner_cfg.critics
            extra = f"H={cfg.horizon}, {len(agent.model.elites)} elites, {critics} critics"
        print(f"{name:6s} {ms:8.2f} ms  {ms / base:5.2f}x SAC  {extra}")


if __name__ == "__main__":
    main()
