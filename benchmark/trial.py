"""One trial's folder: ``results/<run>/trials/<algo>__<task>__s<seed>/``.

- ``spec.json``: the :class:`TrialSpec`;
- ``curve.csv``: tidy rows so far (``env_step, wallclock_s, metric, value``), rewritten after each
  evaluation, so a crashed trial keeps its partial curve;
- ``status.json``: ``{"status": "done" | "failed" | "running", "error": ...}``;
- ``checkpoint.pt``: the driver's resume point while the trial runs (deleted when it finishes).

:func:`execute` is what every worker runs (Ray or not); it never lets an exception escape
unrecorded.
"""

from __future__ import annotations

import csv
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.driver import Row, TrialSpec, run_trial

CURVE_COLUMNS = ["env_step", "wallclock_s", "metric", "value"]


def trial_name(spec: TrialSpec) -> str:
    return f"{spec.algo}__{spec.task}__s{spec.seed}"


def read_status(trial_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((trial_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"status": "pending"}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _write_curve(path: Path, rows: list[Row]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
        w.writeheader()
        w.writerows({k: r[k] for k in CURVE_COLUMNS} for r in rows)
    tmp.replace(path)


def execute(
    spec: TrialSpec,
    trial_dir: Path,
    *,
    on_report: Callable[[list[Row]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) one trial in ``trial_dir``, recording curve and status; returns the status."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    _write_json(trial_dir / "spec.json", asdict(spec))

    def report(new: list[Row], rows: list[Row]) -> None:
        _write_curve(trial_dir / "curve.csv", rows)
        if on_report is not None:
            on_report(new)

    start = time.time()
    _write_json(trial_dir / "status.json", {"status": "running", "started": start})
    try:
        rows = run_trial(spec, trial_dir=trial_dir, report=report)
    except Exception as e:  # recorded, then re-raised so Ray marks the trial errored too
        status = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
            "seconds": time.time() - start,
        }
        _write_json(trial_dir / "status.json", status)
        raise
    _write_curve(trial_dir / "curve.csv", rows)
    status = {"status": "done", "seconds": time.time() - start}
    _write_json(trial_dir / "status.json", status)
    return status
