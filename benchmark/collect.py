"""Gather the trials of a run into one tidy table: ``results/<run>/curves.csv``.

Columns: ``run_id, algo, env, seed, env_step, wallclock_s, metric, value``. Missing metrics are
absent rows, never zeros. ``trials.csv`` lists every planned trial (``trials.json``) with its
status and error: ``done``, ``failed``, ``interrupted`` (started, not finished, not running any
more: collection happens once the run's trials have stopped) or ``not started``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.driver import TrialSpec
from benchmark.trial import read_status, trial_name

COLUMNS = ["run_id", "algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"]
#: a trial's status.json (or its absence) -> its status in trials.csv
STATUS = {"running": "interrupted", "pending": "not started"}


def _planned(run_dir: Path) -> list[tuple[dict[str, Any], Path]]:
    """Every planned trial's spec and folder (which may not exist yet), in folder-name order."""
    planned = run_dir / "trials.json"
    if not planned.exists():  # a run folder without trials.json: the trials that started
        dirs = sorted(d for d in (run_dir / "trials").glob("*") if (d / "spec.json").exists())
        return [(json.loads((d / "spec.json").read_text()), d) for d in dirs]
    specs = [TrialSpec(**d) for d in json.loads(planned.read_text())]
    pairs = {trial_name(s): asdict(s) for s in specs}
    return [(pairs[n], run_dir / "trials" / n) for n in sorted(pairs)]


def collect(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write and return ``(curves, trials)`` for the run in ``run_dir``."""
    run_dir = Path(run_dir)
    run_id = run_dir.name
    frames, trials = [], []
    for spec, tdir in _planned(run_dir):
        status = read_status(tdir)
        trials.append(
            {
                "algo": spec["algo"],
                "env": spec["task"],
                "seed": spec["seed"],
                "total_steps": spec["total_steps"],
                "status": STATUS.get(status["status"], status["status"]),
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
    check_unique(curves, where=str(run_dir))
    trial_df = pd.DataFrame(trials)
    curves.to_csv(run_dir / "curves.csv", index=False)
    trial_df.to_csv(run_dir / "trials.csv", index=False)
    return curves, trial_df


KEY = ["run_id", "algo", "env", "seed", "env_step", "metric"]
"""One value per (trial, env step, metric): the key of a row in ``curves.csv``."""


class DuplicateRowsError(ValueError):
    """A curve holds two values for one (trial, env step, metric)."""


def check_unique(curves: pd.DataFrame, *, where: str = "") -> None:
    """Raise :class:`DuplicateRowsError` naming the first trial, metric and step that has more
    than one value (the driver refuses these as they are emitted; this guards the files)."""
    key = [c for c in KEY if c in curves.columns]
    dup = curves[curves.duplicated(key, keep=False)]
    if dup.empty:
        return
    r = dup.iloc[0]
    values = dup.loc[(dup[key] == r[key]).all(axis=1), "value"].tolist()
    n = len(dup.drop_duplicates(key))
    at = f" in {where}" if where else ""
    raise DuplicateRowsError(
        f"{n} duplicate (trial, env step, metric) key(s){at}, e.g. {r['algo']}|{r['env']}|"
        f"s{r['seed']} metric {r['metric']!r} at env step {r['env_step']}: values {values}. "
        "Each metric must come from one plugin hook only (see benchmark/driver.py); rerun the "
        "trial with the fixed plugin"
    )


def load_curves(run_dir: str | Path) -> pd.DataFrame:
    """The stored tidy curves of a run (no Ray needed)."""
    return pd.read_csv(Path(run_dir) / "curves.csv")
