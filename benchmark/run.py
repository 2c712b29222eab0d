"""A benchmark run: validate the grid, create ``results/<run>/``, run the trials, collect, plot.

``make benchmark ALGOS=sac,rs ENVS=pendulum SEEDS=3`` ends up here via ``python -m benchmark run``.
Bad input fails in :func:`check`, before Ray is imported; :func:`format_plan` prints the grid and
its estimated wall time before any trial starts.

Exit statuses of ``python -m benchmark run`` (:func:`finish`, :func:`interrupted`):
``0`` every trial finished, ``3`` some trials failed, ``130`` interrupted (Ctrl-C; resume with
``make benchmark RESUME=<run-id>``), ``2`` bad input (nothing started).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark import costs
from benchmark.driver import TrialSpec, resolve_config
from benchmark.suites import GridRequest, expand
from benchmark.trial import execute, read_checkpoint, read_status, trial_name

RESULTS = Path("results")
EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130
"""Exit statuses of ``python -m benchmark run`` (130: the shell's convention for SIGINT)."""
PACKAGES = ["torch", "numpy", "gymnasium", "mujoco", "pandas", "seaborn", "ray", "scipy"]


class RunExistsError(FileExistsError):
    """A run folder exists and resuming was not asked for: results are never overwritten."""


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=Path(__file__).parent
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _hardware() -> dict[str, Any]:
    import torch

    from benchmark.costs import machine_kind

    return {
        "machine_kind": machine_kind(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def new_run_id(suite: str) -> str:
    return f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}"


def check(req: GridRequest, results: Path, run_id: str | None) -> tuple[Path, list[TrialSpec]]:
    """Validate ``req`` and the run folder's name without creating anything (``--dry-run``)."""
    specs = expand(req)  # raises on any bad input, before Ray and before touching results/
    run_id = run_id or new_run_id(Path(req.suite).stem)
    run_dir = results / run_id
    if run_dir.exists():
        raise RunExistsError(
            f"{run_dir} exists; results are never overwritten. Resume it with RESUME={run_id} "
            "(python -m benchmark run --resume ...) or choose another RUN=..."
        )
    return run_dir, specs


def plan(req: GridRequest, results: Path, run_id: str | None) -> tuple[Path, list[TrialSpec]]:
    """Validate ``req`` and create the run folder with ``meta.json`` and ``trials.json``."""
    run_dir, specs = check(req, results, run_id)
    run_dir.mkdir(parents=True)
    configs = {}
    for s in specs:
        key = f"{s.algo}__{s.task}"
        if key not in configs:
            _, cfg = resolve_config(s)  # per-task values filled in; the env is not built again
            configs[key] = {"class": type(cfg).__qualname__, **dataclasses.asdict(cfg)}
    meta = {
        "run_id": run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "request": asdict(req),
        "git": _git_commit(),
        "packages": _versions(),
        "hardware": _hardware(),
        "resolved_configs": configs,
    }
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    (run_dir / "trials.json").write_text(json.dumps([asdict(s) for s in specs], indent=2))
    return run_dir, specs


def planned(run_dir: Path) -> list[TrialSpec]:
    """Every trial of a run, as planned in its ``trials.json``."""
    return [TrialSpec(**d) for d in json.loads((run_dir / "trials.json").read_text())]


def pending(run_dir: Path) -> list[TrialSpec]:
    """Trials of a run not finished yet (failed and interrupted ones run again, resuming)."""
    return [
        s
        for s in planned(run_dir)
        if read_status(run_dir / "trials" / trial_name(s))["status"] != "done"
    ]


def resume_points(run_dir: Path, specs: Sequence[TrialSpec]) -> dict[str, costs.Resume]:
    """Where each trial picks up: its checkpoint's env step and next evaluation, or the start."""
    out = {}
    for s in specs:
        tdir = run_dir / "trials" / trial_name(s)
        ckpt = read_checkpoint(tdir) if (tdir / "checkpoint.pt").exists() else None
        if ckpt is not None:
            out[s.label] = costs.Resume(step=int(ckpt["step"]), next_eval=int(ckpt["next_eval"]))
    return out


def slots(*, use_ray: bool, cpus_per_trial: float, num_cpus: int | None) -> tuple[int, str]:
    """Parallel trial slots of this run and how they were counted."""
    if not use_ray:
        return 1, "--no-ray: one trial at a time"
    cpus = num_cpus or costs.available_cpus()
    n = max(int(cpus // max(cpus_per_trial, 1e-9)), 1)
    note = f"{cpus} CPU(s) // {cpus_per_trial:g} per trial"
    if os.environ.get("RAY_ADDRESS"):
        note += "; RAY_ADDRESS is set: this machine's CPUs, the cluster's may differ"
    return n, note


def format_plan(
    specs: Sequence[TrialSpec],
    *,
    use_ray: bool = True,
    cpus_per_trial: float = 1.0,
    num_cpus: int | None = None,
    resume: dict[str, costs.Resume] | None = None,
) -> str:
    """The grid as a table with per-trial estimates and the estimated wall time."""
    n, note = slots(use_ray=use_ray, cpus_per_trial=cpus_per_trial, num_cpus=num_cpus)
    return costs.format_plan(specs, slots=n, slots_note=note, resume=resume)


def longest_first(
    specs: Sequence[TrialSpec], resume: dict[str, costs.Resume] | None = None
) -> list[TrialSpec]:
    """``specs`` in the order the plan's estimate assumes: unestimated, then longest first."""
    table, resume = costs.load(), resume or {}

    def key(s: TrialSpec) -> float:
        r = resume.get(s.label, costs.Resume())
        est = costs.estimate(s, table, from_step=r.step, next_eval=r.next_eval)
        return -math.inf if est is None else -est

    return sorted(specs, key=key)


def execute_all(
    run_dir: Path,
    specs: Sequence[TrialSpec],
    *,
    use_ray: bool = True,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    num_cpus: int | None = None,
    checkpoint_every_s: float = 120.0,
    progress_every_s: float = 30.0,
) -> None:
    """Run ``specs`` (through Ray Tune, or in this process when ``use_ray`` is False).

    Ctrl-C raises ``KeyboardInterrupt`` out of here once Ray (if any) is shut down; the trial that
    ran records itself ``interrupted`` (a Ray worker's stays ``running``: :func:`collect` reads it
    as interrupted)."""
    from benchmark.tune_adapter import stop_leftover_ray

    stop_leftover_ray(run_dir.parent)  # of runs whose driver was killed (kill -9)
    attempt = (
        len(list((run_dir / "ray").glob("attempt-*"))) + 1 if (run_dir / "ray").exists() else 1
    )
    if use_ray:
        from benchmark.tune_adapter import run_with_ray

        run_with_ray(
            specs,
            run_dir,
            attempt=attempt,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            num_cpus=num_cpus,
            checkpoint_every_s=checkpoint_every_s,
            progress_every_s=progress_every_s,
        )
        return
    for s in specs:
        try:
            execute(
                s,
                run_dir / "trials" / trial_name(s),
                checkpoint_every_s=checkpoint_every_s,
                progress_every_s=progress_every_s,
            )
        except Exception as e:  # recorded in status.json; the grid goes on
            print(f"[{s.label}] FAILED: {type(e).__name__}: {e}", file=sys.stderr)


def _update_meta(run_dir: Path, trials: Any, *, ended: str) -> dict[str, Any]:
    """Record how the run (this attempt) ended: ``finished`` or ``interrupted``, with a time."""
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key in ("finished", "interrupted"):
        meta.pop(key, None)
    meta[ended] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["trial_status"] = trials["status"].value_counts().to_dict() if len(trials) else {}
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    return meta


def interrupted(run_dir: Path) -> int:
    """After Ctrl-C: write ``curves.csv`` and ``trials.csv`` (every planned trial with its status),
    but no summary or plot (unfinished trials are not final); say how to resume; 130."""
    from benchmark.collect import collect

    _, trials = collect(run_dir)
    _update_meta(run_dir, trials, ended="interrupted")
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    parts = [f"{counts.get(k, 0)} {k}" for k in ("done", "interrupted", "not started")]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    for r in trials.itertuples() if counts else []:  # a Ray node that died says so
        if r.status == "interrupted" and isinstance(r.error, str) and r.error:
            print(f"  {r.algo}|{r.env}|s{r.seed}: interrupted: {r.error}", file=sys.stderr)
    print(
        f"\nrun {run_dir.name} INTERRUPTED: {', '.join(parts)} (of {len(trials)} planned). "
        f"Curves so far: {run_dir / 'curves.csv'}; trials: {run_dir / 'trials.csv'}; no summary or "
        f"plots until the run has finished.\n"
        f"Resume with: make benchmark RESUME={run_dir.name}\n"
        f"  (python -m benchmark run --resume {run_dir.name}: finished trials are kept, "
        "interrupted ones continue from their last checkpoint)",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_INTERRUPTED


def finish(run_dir: Path) -> int:
    """Collect curves, render plots and tables, print a summary; 0 when every trial finished,
    3 when some failed, 130 (:func:`interrupted`) when a Ray node died under some trials."""
    from benchmark.collect import collect
    from benchmark.plots import render

    curves, trials = collect(run_dir)
    if len(trials) and (trials["status"] == "interrupted").any():
        return interrupted(run_dir)  # a Ray node died under its trials: resumable, not final
    files = render(run_dir) if len(curves) else []
    meta = _update_meta(run_dir, trials, ended="finished")

    print(f"\nrun {run_dir.name}: {meta['trial_status']}")
    if (run_dir / "summary.md").exists():
        print((run_dir / "summary.md").read_text())
    failed = trials[trials["status"] != "done"] if len(trials) else trials
    for r in failed.itertuples():
        print(f"  {r.algo}|{r.env}|s{r.seed}: {r.status} {r.error}")
    print(f"curves: {run_dir / 'curves.csv'}; {len(files)} figures/tables under {run_dir}")
    if len(failed):
        print(f"resume unfinished trials with: make benchmark RESUME={run_dir.name}")
    return EXIT_OK if len(failed) == 0 else EXIT_FAILED
