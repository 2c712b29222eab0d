"""A benchmark run: validate the grid, create ``results/<run>/``, run the trials, collect, plot.

``make benchmark ALGOS=sac,rs ENVS=pendulum SEEDS=3`` ends up in :func:`main` here via
``python -m benchmark run``. Bad input fails in :func:`plan`, before Ray is imported.
"""

from __future__ import annotations

import dataclasses
import json
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

from benchmark.driver import TrialSpec, resolve_config
from benchmark.suites import GridRequest, expand
from benchmark.trial import execute, read_status, trial_name

RESULTS = Path("results")
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

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def new_run_id(suite: str) -> str:
    return f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}"


def plan(req: GridRequest, results: Path, run_id: str | None) -> tuple[Path, list[TrialSpec]]:
    """Validate ``req`` and create the run folder with ``meta.json`` and ``trials.json``."""
    specs = expand(req)  # raises on any bad input, before Ray and before touching results/
    run_id = run_id or new_run_id(Path(req.suite).stem)
    run_dir = results / run_id
    if run_dir.exists():
        raise RunExistsError(
            f"{run_dir} exists; results are never overwritten. Resume it with RESUME={run_id} "
            "(python -m benchmark run --resume ...) or choose another RUN=..."
        )
    run_dir.mkdir(parents=True)
    configs = {}
    for s in specs:
        key = f"{s.algo}__{s.task}"
        if key not in configs:
            _, cfg = resolve_config(s)  # already validated by expand
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


def pending(run_dir: Path) -> list[TrialSpec]:
    """Trials of a run not finished yet (failed and interrupted ones run again, resuming)."""
    specs = [TrialSpec(**d) for d in json.loads((run_dir / "trials.json").read_text())]
    return [s for s in specs if read_status(run_dir / "trials" / trial_name(s))["status"] != "done"]


def execute_all(
    run_dir: Path,
    specs: Sequence[TrialSpec],
    *,
    use_ray: bool = True,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    num_cpus: int | None = None,
) -> None:
    """Run ``specs`` (through Ray Tune, or in this process when ``use_ray`` is False)."""
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
        )
        return
    for s in specs:
        try:
            execute(s, run_dir / "trials" / trial_name(s))
        except Exception as e:  # recorded in status.json; the grid goes on
            print(f"[{s.label}] FAILED: {type(e).__name__}: {e}", file=sys.stderr)


def finish(run_dir: Path) -> int:
    """Collect curves, render plots and tables, print a summary; 0 when every trial finished."""
    from benchmark.collect import collect
    from benchmark.plots import render

    curves, trials = collect(run_dir)
    files = render(run_dir) if len(curves) else []
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["trial_status"] = trials["status"].value_counts().to_dict() if len(trials) else {}
    meta_path.write_text(json.dumps(meta, indent=2, default=str))

    print(f"\nrun {run_dir.name}: {meta['trial_status']}")
    if (run_dir / "summary.md").exists():
        print((run_dir / "summary.md").read_text())
    failed = trials[trials["status"] != "done"] if len(trials) else trials
    for r in failed.itertuples():
        print(f"  {r.algo}|{r.env}|s{r.seed}: {r.status} {r.error}")
    print(f"curves: {run_dir / 'curves.csv'}; {len(files)} figures/tables under {run_dir}")
    if len(failed):
        print(f"resume unfinished trials with: make benchmark RESUME={run_dir.name}")
    return 0 if len(failed) == 0 else 3
