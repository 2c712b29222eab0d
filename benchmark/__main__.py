"""Command line: ``python -m benchmark {run,plots,list,costs,evaluate}`` (``make benchmark``:
``run``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from algorithms import ALGORITHMS
from algorithms.api import ConfigError
from envs import TASKS
from envs.registry import UnknownNameError


def _csv(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the fix (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An argparse ``type``: a number of ``kind`` that is at least ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'} >= {minimum:g}, "
                f"got {text!r}"
            )
        return value

    return parse


def _evaluate(args: argparse.Namespace) -> int:
    """``python -m benchmark evaluate``: reload a finished trial's agent (or, ``--checkpoint``,
    an unfinished one's last checkpoint) and run episodes."""
    import numpy as np

    from benchmark.driver import _episode_seed, evaluate, load_agent
    from benchmark.suites import SuiteError, parse_set

    trial = Path(args.trial)
    try:
        sets = parse_set(args.set)
        spec_algo = _trial_algo(trial)
        other = sorted(set(sets) - {spec_algo})
        if other:
            raise ConfigError(
                f"--set {other[0]}.*: this trial ran {spec_algo!r}; write {spec_algo}.KEY=VALUE"
            )
        algo, task, spec, step = load_agent(
            trial, overrides=sets.get(spec_algo, {}), device=args.device, checkpoint=args.checkpoint
        )
    except (ConfigError, SuiteError, UnknownNameError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stream = 1 if args.starts == "trial" else 2  # 0: training episodes, 1: the trial's evaluations
    seeds = [_episode_seed(spec.seed, stream, k) for k in range(args.episodes)]
    policy = "training policy (explore=True)" if args.explore else "deterministic policy"
    print(f"{spec.label} at env step {step}: {args.episodes} episode(s), {policy}, "
          f"{args.starts} start states", flush=True)  # fmt: skip
    env = task.make_env()
    returns, lengths = [], []
    try:
        for k, s in enumerate(seeds):  # one at a time, so a slow planner shows its progress
            ev = evaluate(algo, env, task, [s], explore=args.explore)
            returns.append(ev.mean)
            lengths.append(ev.length)
            print(f"episode {k}: return {ev.mean:.1f}, length {ev.length:.0f}", flush=True)
    finally:
        env.close()
    print("returns:", " ".join(f"{r:.1f}" for r in returns))
    print(f"mean {np.mean(returns):.1f} +- {np.std(returns):.1f} (std over episodes), median "
          f"{float(np.median(returns)):.1f}, mean length {np.mean(lengths):.1f}")  # fmt: skip
    return 0


def _trial_algo(trial: Path) -> str:
    """The algorithm of the trial in ``trial`` (its ``spec.json``), or ``FileNotFoundError``."""
    import json

    spec = trial / "spec.json"
    if not spec.exists():
        raise FileNotFoundError(
            f"{spec} does not exist: give a trial folder, results/<run>/trials/<algo>__<task>__s<seed>"
        )
    return str(json.loads(spec.read_text())["algo"])


def main(argv: list[str] | None = None) -> int:
    p = _OneLineParser(prog="python -m benchmark", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a suite or a grid (algorithms x tasks x seeds)")
    r.add_argument("--suite", default="quick", help="suite name under benchmark/suites or a path")
    r.add_argument("--algos", help="comma-separated algorithms (default: the suite's grid)")
    r.add_argument("--envs", help="comma-separated tasks (default: the suite's grid)")
    r.add_argument(
        "--seeds",
        metavar="N|A-B|A,B,...",
        help="N for seeds 0..N-1, a range A-B (3-4: seeds 3, 4) or a list 0,2,5 (default: the "
        "suite's)",
    )
    r.add_argument(
        "--steps", metavar="N", help="env-step budget for every trial, > 0 (default: the suite's)"
    )
    r.add_argument(
        "--eval-every",
        metavar="N",
        help="env steps between evaluations, > 0 (default: the suite's)",
    )
    r.add_argument(
        "--eval-episodes", metavar="N", help="episodes per evaluation, >= 0 (default: the suite's)"
    )
    r.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="ALGO.KEY=VALUE",
        help="hyperparameters; KEY is a dotted path into nested configs (mbpo.sac.lr=1e-3)",
    )
    r.add_argument("--run-id", help="name of the results folder (default: <suite>-<timestamp>)")
    r.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    r.add_argument("--results", default="results", help="results root folder")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--cpus-per-trial", type=_at_least(1), default=1)
    r.add_argument("--gpus-per-trial", type=_at_least(0, float), default=0.0)
    r.add_argument("--num-cpus", type=_at_least(1), help="CPUs for local Ray (default: all)")
    r.add_argument("--no-ray", action="store_true", help="run trials one by one in this process")
    r.add_argument(
        "--dry-run", action="store_true", help="print the plan (grid, estimates) and exit"
    )
    r.add_argument(
        "--checkpoint-every",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="checkpoint at the first training-episode end this long after the last save "
        "(also after every evaluation)",
    )
    r.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="print each running trial's progress at least this often",
    )
    pl = sub.add_parser(
        "plots", help="re-render figures and tables of a stored run, or merge runs (no Ray)"
    )
    pl.add_argument(
        "run", help="run id under results/ or a path; a,b merges runs into a new folder"
    )
    pl.add_argument("--results", default="results")
    pl.add_argument("--out", help="merged runs: folder name under --results (default: a+b)")
    pl.add_argument(
        "--allow-config-mismatch",
        action="store_true",
        help="merged runs: merge even where configs differ for the same algorithm and task",
    )
    pl.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="RUN=NAME",
        help="merged runs: rename every algorithm of RUN to <algo>-NAME (e.g. the oracle run of "
        "the same plugins: --variant oracle-ip=oracle); repeatable",
    )
    pl.add_argument(
        "--window",
        metavar="LOW:HIGH",
        help="also write summary_LOW-HIGH.md/.tex: each seed's mean return over the evaluations "
        "in (LOW, HIGH] env steps (e.g. the last 10k of 30k: --window 20000:30000)",
    )
    sub.add_parser("list", help="list algorithms, tasks and suites")
    co = sub.add_parser(
        "costs", help="refresh benchmark/costs.csv (the plan's estimates) from a finished run"
    )
    co.add_argument("run", help="run id under results/ or a path")
    co.add_argument("--results", default="results")
    ev = sub.add_parser(
        "evaluate",
        help="evaluate the agent a finished trial saved (agent.pt) on more or other episodes",
    )
    ev.add_argument("trial", help="a trial folder: results/<run>/trials/<algo>__<task>__s<seed>")
    ev.add_argument("--episodes", type=_at_least(1), default=10, help="episodes (default 10)")
    ev.add_argument(
        "--starts",
        choices=["fresh", "trial"],
        default="fresh",
        help="fresh: start states the trial never saw (default); trial: the trial's own "
        "evaluation start states (the first N; with the trial's settings its last evaluation "
        "is reproduced)",
    )
    ev.add_argument(
        "--checkpoint",
        action="store_true",
        help="the agent of an unfinished trial's last checkpoint (checkpoint.pt, read only) "
        "instead of a finished trial's agent.pt",
    )
    ev.add_argument(
        "--explore",
        action="store_true",
        help="act with the training policy (exploration on) instead of the deterministic one: "
        "a diagnostic, not the suite's evaluation protocol",
    )
    ev.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="ALGO.KEY=VALUE",
        help="settings added to the trial's own, for ones that leave the networks' shapes alone "
        "(muzero.eval_root_noise=true)",
    )
    ev.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "evaluate":
        return _evaluate(args)

    from benchmark import run as runmod

    if args.cmd == "list":
        from benchmark.suites import available_suites

        print("algorithms:", ", ".join(ALGORITHMS))
        from envs import NAMESPACES
        from envs.dmc import task_names

        print("tasks:", ", ".join(TASKS))
        print("  and any of:", "; ".join(form for _, form in NAMESPACES.values()))
        print("DMC tasks:", ", ".join(task_names()))
        print("suites:", ", ".join(available_suites()))
        return 0
    if args.cmd == "costs":
        from benchmark import costs

        run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.results) / args.run
        try:
            rows = costs.refresh(run_dir)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if not rows:
            print(f"error: {run_dir} has no finished trial to measure", file=sys.stderr)
            return 2
        print(f"updated {len(rows)} row(s) of {costs.COSTS}:")
        for c in rows.values():
            print(costs.describe(c))
        return 0
    if args.cmd == "plots":
        from benchmark.collect import DuplicateRowsError
        from benchmark.plots import MergeError, merge_runs, render

        names = _csv(args.run) or []
        run_dirs = [Path(n) if Path(n).is_dir() else Path(args.results) / n for n in names]
        missing = [d for d in run_dirs if not (d / "curves.csv").exists()]
        if not run_dirs or missing:
            where = missing[0] if missing else repr(args.run)
            print(f"error: no curves.csv in {where}", file=sys.stderr)
            return 2
        window = None
        if args.window:
            low, _, high = args.window.partition(":")
            try:
                window = (int(low), int(high))
            except ValueError:
                window = None
            if window is None or not 0 <= window[0] < window[1]:
                print(f"error: --window {args.window}: write LOW:HIGH env steps with "
                      "0 <= LOW < HIGH, e.g. --window 20000:30000", file=sys.stderr)  # fmt: skip
                return 2
        if len(run_dirs) == 1:
            files = render(run_dirs[0], window=window)
        else:
            out = Path(args.results) / (args.out or "+".join(d.name for d in run_dirs))
            bad = [v for v in args.variant if "=" not in v]
            if bad:
                print(f"error: --variant {bad[0]}: write RUN=NAME, e.g. --variant "
                      f"{run_dirs[-1].name}=oracle", file=sys.stderr)  # fmt: skip
                return 2
            variants = dict(v.split("=", 1) for v in args.variant)
            try:
                files = merge_runs(
                    run_dirs,
                    out,
                    allow_config_mismatch=args.allow_config_mismatch,
                    variants=variants,
                    window=window,
                )
            except (MergeError, DuplicateRowsError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        for f in files:
            print(f)
        return 0

    from benchmark.suites import GridRequest, parse_seeds, parse_set, parse_setting
    from benchmark.tune_adapter import ClusterError

    results = Path(args.results)
    try:
        if args.resume:
            run_dir = results / args.resume
            if not (run_dir / "trials.json").exists():
                raise ConfigError(f"no run {args.resume!r} under {results} to resume")
            specs = runmod.pending(run_dir)
            resume = runmod.resume_points(run_dir, specs)
            print(f"resuming {run_dir.name}: {len(specs)} unfinished trial(s)")
        else:
            req = GridRequest(
                suite=args.suite,
                algos=_csv(args.algos),
                tasks=_csv(args.envs),
                seeds=None if args.seeds is None else parse_seeds(args.seeds),
                steps=parse_setting(args.steps, "steps"),
                eval_every=parse_setting(args.eval_every, "eval_every"),
                eval_episodes=parse_setting(args.eval_episodes, "eval_episodes"),
                overrides=parse_set(args.set),
                device=args.device,
                threads=args.cpus_per_trial,
            )
            make = runmod.check if args.dry_run else runmod.plan
            run_dir, specs = make(req, results, args.run_id)
            resume = None
            where = "(dry run: not created)" if args.dry_run else f"-> {run_dir}"
            print(f"run {run_dir.name}: {len(specs)} trial(s) {where}")
    except (ConfigError, UnknownNameError, runmod.RunExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    use_ray = not args.no_ray
    plan = runmod.format_plan(
        specs,
        use_ray=use_ray,
        cpus_per_trial=args.cpus_per_trial,
        num_cpus=args.num_cpus,
        resume=resume,
    )
    print(plan, flush=True)
    if args.dry_run:
        print("dry run: nothing was started or written")
        return 0
    try:
        if specs:
            runmod.execute_all(
                run_dir,
                runmod.longest_first(specs, resume),
                use_ray=use_ray,
                cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial,
                num_cpus=args.num_cpus,
                checkpoint_every_s=args.checkpoint_every,
                progress_every_s=args.progress_every,
            )
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the report
        return runmod.interrupted(run_dir)
    except ClusterError as e:  # RAY_ADDRESS: checked before any trial starts
        print(f"error: {e}", file=sys.stderr)
        return runmod.EXIT_BAD_INPUT
    return runmod.finish(run_dir)


if __name__ == "__main__":
    sys.exit(main())
