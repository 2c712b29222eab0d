"""Command line: ``python -m benchmark {run,plots,list}`` (``make benchmark`` wraps ``run``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from algorithms import ALGORITHMS
from algorithms.api import ConfigError
from envs import TASKS
from envs.registry import UnknownNameError


def _csv(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a suite or a grid (algorithms x tasks x seeds)")
    r.add_argument("--suite", default="quick", help="suite name under benchmark/suites or a path")
    r.add_argument("--algos", help="comma-separated algorithms (default: the suite's grid)")
    r.add_argument("--envs", help="comma-separated tasks (default: the suite's grid)")
    r.add_argument("--seeds", type=int, help="number of seeds, 0..N-1 (default: the suite's)")
    r.add_argument(
        "--steps", type=int, help="env-step budget for every trial (default: the suite's)"
    )
    r.add_argument("--eval-every", type=int)
    r.add_argument("--eval-episodes", type=int)
    r.add_argument("--set", nargs="*", default=[], metavar="ALGO.KEY=VALUE", help="hyperparameters")
    r.add_argument("--run-id", help="name of the results folder (default: <suite>-<timestamp>)")
    r.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    r.add_argument("--results", default="results", help="results root folder")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--cpus-per-trial", type=int, default=1)
    r.add_argument("--gpus-per-trial", type=float, default=0.0)
    r.add_argument("--num-cpus", type=int, help="CPUs for local Ray (default: all)")
    r.add_argument("--no-ray", action="store_true", help="run trials one by one in this process")
    pl = sub.add_parser("plots", help="re-render figures and tables of a stored run (no Ray)")
    pl.add_argument("run", help="run id under results/ or a path")
    pl.add_argument("--results", default="results")
    sub.add_parser("list", help="list algorithms, tasks and suites")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from benchmark import run as runmod

    if args.cmd == "list":
        from benchmark.suites import available_suites

        print("algorithms:", ", ".join(ALGORITHMS))
        print("tasks:", ", ".join(TASKS))
        print("suites:", ", ".join(available_suites()))
        return 0
    if args.cmd == "plots":
        from benchmark.plots import render

        run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.results) / args.run
        if not (run_dir / "curves.csv").exists():
            print(f"error: no curves.csv in {run_dir}", file=sys.stderr)
            return 2
        for f in render(run_dir):
            print(f)
        return 0

    from benchmark.suites import GridRequest, parse_set

    results = Path(args.results)
    try:
        if args.resume:
            run_dir = results / args.resume
            if not (run_dir / "trials.json").exists():
                raise ConfigError(f"no run {args.resume!r} under {results} to resume")
            specs = runmod.pending(run_dir)
            print(f"resuming {run_dir.name}: {len(specs)} unfinished trial(s)")
        else:
            req = GridRequest(
                suite=args.suite,
                algos=_csv(args.algos),
                tasks=_csv(args.envs),
                seeds=args.seeds,
                steps=args.steps,
                eval_every=args.eval_every,
                eval_episodes=args.eval_episodes,
                overrides=parse_set(args.set),
                device=args.device,
                threads=args.cpus_per_trial,
            )
            run_dir, specs = runmod.plan(req, results, args.run_id)
            print(f"run {run_dir.name}: {len(specs)} trial(s) -> {run_dir}")
    except (ConfigError, UnknownNameError, runmod.RunExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if specs:
        runmod.execute_all(
            run_dir,
            specs,
            use_ray=not args.no_ray,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            num_cpus=args.num_cpus,
        )
    return runmod.finish(run_dir)


if __name__ == "__main__":
    sys.exit(main())
