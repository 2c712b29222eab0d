"""Gather the trials of a run into one tidy table: ``results/<run>/curves.csv``.

Columns: ``run_id, algo, env, seed, env_step, wallclock_s, metric, value``. Missing metrics are
absent rows, never zeros. ``trials.csv`` lists every trial with its status and error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.trial import read_status

COLUMNS = ["run_id", "algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"]


def collect(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write and return ``(curves, trials)`` for the run in ``run_dir``."""
    run_dir = Path(run_dir)
    run_id = run_dir.name
    frames, trials = [], []
    for tdir in sorted((run_dir / "trials").glob("*")):
        if not (tdir / "spec.json").exists():
            continue
        spec = json.loads((tdir / "spec.json").read_text())
        status = read_status(tdir)
        trials.append(
            {
                "algo": spec["algo"],
                "env": spec["task"],
                "seed": spec["seed"],
                "total_steps": spec["total_steps"],
                "status": status["status"],
                "seconds": status.get("seconds"),
                "error": status.get("error", ""),
            }
        )
        curve = tdir / "curve.csv"
        if curve.exists() and curve.stat().st_size > 0:
            df = pd.read_csv(curve)
            df.insert(0, "seed", spec["seed"])
            df.insert(0, "env", spec["task"])
            df.insert(0, "algo", spec["algo"])
            df.insert(0, "run_id", run_id)
            frames.append(df)
    curves = (
        pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
    )
    trial_df = pd.DataFrame(trials)
    curves.to_csv(run_dir / "curves.csv", index=False)
    trial_df.to_csv(run_dir / "trials.csv", index=False)
    return curves, trial_df


def load_curves(run_dir: str | Path) -> pd.DataFrame:
    """The stored tidy curves of a run (no Ray needed)."""
    return pd.read_csv(Path(run_dir) / "curves.csv")
