"""One trial's folder: ``results/<run>/trials/<algo>__<task>__s<seed>/``.

- ``spec.json``: the :class:`TrialSpec`;
- ``curve.csv``: tidy rows so far (``env_step, wallclock_s, metric, value``), rewritten after each
  evaluation, so a crashed trial keeps its partial curve;
- ``status.json``: ``{"status": "done" | "failed" | "running" | "interrupted", "error": ...,
  "node": {"host": ..., "ip": ..., "ray_node_id": ...}}`` (``running`` left behind by a process
  that was killed reads as interrupted once the run is over; ``node``: where the trial last ran);
- ``checkpoint.pt``: the driver's resume point while the trial runs (deleted when it finishes), and
  ``checkpoint.json``: its env step, episode and next evaluation, readable without torch;
- ``agent.pt``: the agent as the trial finished (its whole ``state_dict``, with the spec), for
  ``python -m benchmark evaluate`` (:func:`benchmark.driver.load_agent`). Like the checkpoint it
  stays out of git (``results/*/trials/``).

:func:`execute` is what every worker runs (Ray or not); it never lets an exception escape
unrecorded, and prints one progress line per trial at every evaluation and at least every
``progress_every_s`` seconds (a slow planner's step or episode-end fit can take minutes).
"""

from __future__ import annotations

import csv
import json
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.driver import Row, TrialSpec, run_trial

CURVE_COLUMNS = ["env_step", "wallclock_s", "metric", "value"]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_part(name: str) -> str:
    """``name`` as part of a file name: every character outside ``[A-Za-z0-9._-]`` becomes
    ``_`` (``gym:Swimmer-v5 -> gym_Swimmer-v5``, ``dmc:cheetah-run@4 -> dmc_cheetah-run_4``);
    the registered task names are unchanged."""
    return _UNSAFE.sub("_", name)


def trial_name(spec: TrialSpec) -> str:
    return f"{spec.algo}__{file_part(spec.task)}__s{spec.seed}"


def read_status(trial_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((trial_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"status": "pending"}


def read_checkpoint(trial_dir: Path) -> dict[str, Any] | None:
    """Where the trial's checkpoint stands (``step``, ``episode``, ``next_eval``, ``elapsed``)."""
    try:
        return json.loads((trial_dir / "checkpoint.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def progress_line(spec: TrialSpec, state: dict[str, Any], estimate_s: float | None) -> str:
    """``[algo|task|sN] step 400/1000 (40%) eval -660.9 train -1024.2 elapsed 1:52 ETA 2:48``.

    ETA: the larger of the cost table's estimate less the time spent, and the trial's own rate
    since it (re)started applied to the steps left (the rate alone misleads where the cost per step
    changes, e.g. MBPO's cheap random phase; the table alone where this machine is slower)."""
    step, total = int(state.get("step", 0)), spec.total_steps
    now = time.perf_counter()
    done = step - state["start_step"]
    etas = []
    if done > 0:
        etas.append((now - state["start_time"]) / done * (total - step))
    if estimate_s is not None:
        etas.append(max(estimate_s - (now - state["start_time"]), 0.0))
    eta: float | None = max(etas) if etas else None
    returns = " ".join(
        f"{name} {'-' if state.get(key) is None else format(state[key], '.1f')}"
        for name, key in (("eval", "eval_return"), ("train", "train_return"))
    )
    return (
        f"[{spec.label}] step {step}/{total} ({100 * step / max(total, 1):.0f}%) {returns} "
        f"elapsed {_clock(now - state['t0'])} ETA {_clock(eta)}"
    )


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def write_status(trial_dir: Path, status: dict[str, Any]) -> None:
    """Replace ``trial_dir/status.json`` atomically."""
    _write_json(trial_dir / "status.json", status)


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
    checkpoint_every_s: float = 120.0,
    progress_every_s: float = 30.0,
    node: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) one trial in ``trial_dir``, recording curve and status; returns the status.

    ``node``: where it runs (a Ray node's id and IP), recorded in every status with the host name.
    A ``KeyboardInterrupt`` (Ctrl-C without Ray) is recorded as ``interrupted`` and re-raised."""
    from benchmark import costs

    trial_dir.mkdir(parents=True, exist_ok=True)
    _write_json(trial_dir / "spec.json", asdict(spec))
    ckpt = read_checkpoint(trial_dir) if (trial_dir / "checkpoint.pt").exists() else None
    estimate_s = costs.estimate(
        spec,
        costs.load(),
        from_step=ckpt["step"] if ckpt else 0,
        next_eval=ckpt["next_eval"] if ckpt else 0,
    )
    now = time.perf_counter()  # run_trial resets these once the plugin and envs are built
    at = ckpt["step"] if ckpt else 0
    state: dict[str, Any] = {"step": at, "start_step": at, "start_time": now}
    state["t0"] = now - (ckpt["elapsed"] if ckpt else 0.0)

    def say() -> None:
        print(progress_line(spec, state, estimate_s), flush=True)

    def report(new: list[Row], rows: list[Row]) -> None:
        _write_curve(trial_dir / "curve.csv", rows)
        say()
        if on_report is not None:
            on_report(new)

    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(progress_every_s):
            say()

    where = f"resuming at env step {ckpt['step']} (checkpoint)" if ckpt else "starting"
    print(f"[{spec.label}] {where}, estimated {_clock(estimate_s)} to go", flush=True)
    start = time.time()
    where_run = {"host": socket.gethostname(), **(node or {})}
    write_status(trial_dir, {"status": "running", "started": start, "node": where_run})
    threading.Thread(target=heartbeat, name=f"progress {spec.label}", daemon=True).start()
    try:
        rows = run_trial(
            spec,
            trial_dir=trial_dir,
            report=report,
            checkpoint_every_s=checkpoint_every_s,
            progress=state,
        )
    except Exception as e:  # recorded, then re-raised so Ray marks the trial errored too
        status = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
            "seconds": time.time() - start,
            "node": where_run,
        }
        write_status(trial_dir, status)
        raise
    except KeyboardInterrupt:
        ckpt = read_checkpoint(trial_dir)
        status = {
            "status": "interrupted",
            "step": state.get("step", 0),
            "checkpoint_step": ckpt["step"] if ckpt else 0,
            "seconds": time.time() - start,
            "node": where_run,
        }
        write_status(trial_dir, status)
        raise
    finally:
        stop.set()
    _write_curve(trial_dir / "curve.csv", rows)
    status = {"status": "done", "seconds": time.time() - start, "node": where_run}
    write_status(trial_dir, status)
    print(f"[{spec.label}] done in {_clock(status['seconds'])}", flush=True)
    return status
