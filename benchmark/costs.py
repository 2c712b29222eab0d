"""What a grid will cost before it runs: the cost table ``benchmark/costs.csv`` and the plan.

One row per (algorithm, task), measured on a finished run, never guessed:

- ``s_per_step``: seconds per training env step (act, observe, update, episode-end fits): the
  trial's clock (``wallclock_s`` of its last row) less its evaluations, over its budget;
- ``s_per_eval_step``: seconds per evaluation env step (planners pay for every one), from the
  clock around each evaluation, over ``eval_episodes x eval_length`` steps per evaluation point;
- ``eval_length``: mean evaluation episode length (shorter where episodes terminate early);
- ``overhead_s``: the trial's ``seconds`` (status.json) before its clock starts and after its last
  evaluation (building the plugin and the envs, writing the curve);
- ``trials`` and ``source``: how many finished trials were averaged, and which run and commit;
- ``kind``: the machine kind that measured it (:func:`machine_kind`: the CPU's vector unit, and
  whether it multiplies bf16 natively, which decides the suites' ``bf16: auto``). The same trial
  costs ~2x more on an AVX2 core than on an AVX-512 BF16 one (docs/performance.md), so the plan
  takes this machine's kind's rows and falls back to another kind's, saying so.

- ``settings``: :func:`settings_digest` of the measured trials' hyperparameter overrides (suite
  entry and ``SET``), so that one pair keeps a row per configuration: the standard suite's
  entry of a plugin can cost 10x its quick one. Empty: measured before settings were recorded.

A trial's estimate is ``overhead_s + steps x s_per_step + evaluations x eval_episodes x eval_length
x s_per_eval_step`` for its own budget and evaluation schedule; a pair without a row is ``?``.
Costs are per core (``threads: 1``) on the machine kind that measured them, and a learned-model
trial's per-step cost grows with its data, so they are estimates for planning, not promises.
``python -m benchmark costs RUN=<run-id>`` (``make costs RUN=...``) refreshes the rows of a run's
pairs, for the kind of machine the run ran on and the settings it ran with, from its finished
trials. A trial takes the row of its own settings (this kind's, else the reference kind's, else
any kind's), else one of unrecorded settings, else one of other settings, and the plan says how
many trials it estimated from another kind's or other settings' rows.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.driver import TrialSpec

COSTS = Path(__file__).parent / "costs.csv"

#: The kind of the reference machine, where the quick suite's 15-minute promise is checked
#: (tests/test_orchestrator.py): 2 cores of an AVX-512 CPU with bf16 units.
REFERENCE_KIND = "AVX512+bf16"


def machine_kind() -> str:
    """This machine's kind for costs: the vector unit torch's CPU kernels use (``AVX2``,
    ``AVX512``, ...), ``+bf16`` where the CPU multiplies bf16 natively, and ``+cuda`` where
    trials run on a GPU (``device: auto``)."""
    import torch

    from algorithms.models.layers import cpu_has_fast_bf16

    kind = torch.backends.cpu.get_cpu_capability() + ("+bf16" if cpu_has_fast_bf16() else "")
    return kind + ("+cuda" if torch.cuda.is_available() else "")


@dataclass(frozen=True)
class Cost:
    """Measured cost of one (algorithm, task) pair on one core."""

    algo: str
    task: str
    s_per_step: float
    """Seconds per training env step."""
    s_per_eval_step: float | None
    """Seconds per evaluation env step (``None``: measured without evaluation episodes)."""
    eval_length: float | None
    """Mean evaluation episode length in env steps (``None``: no evaluation episodes measured)."""
    overhead_s: float
    """Seconds per trial outside the env loop (plugin and env construction, last writes)."""
    trials: int
    """Finished trials averaged into this row."""
    source: str
    """The run (and its commit) that measured it."""
    kind: str = REFERENCE_KIND
    """The machine kind that measured it (:func:`machine_kind`)."""
    settings: str = ""
    """:func:`settings_digest` of the measured trials' overrides (empty: not recorded)."""


def settings_digest(overrides: Mapping[str, Any]) -> str:
    """Eight hex digits naming a trial's hyperparameter overrides (its suite entry and ``SET``),
    leaving out the ``bf16`` switches: they follow the machine kind, which ``kind`` records."""
    kept = {k: v for k, v in overrides.items() if not k.endswith("bf16")}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


#: A loaded cost table: per ``(algo, task)``, its rows, this machine's kind first (or one row).
Table = Mapping[tuple[str, str], Cost | Sequence[Cost]]


def load_all(path: Path | None = None) -> dict[tuple[str, str, str, str], Cost]:
    """Every row of the cost table, keyed by ``(algo, task, kind, settings)`` (empty without the
    file; a table from before kinds reads as the reference kind's, before settings as
    unrecorded ones)."""
    path = path or COSTS
    if not path.exists():
        return {}
    out = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            cost = Cost(
                algo=r["algo"],
                task=r["task"],
                s_per_step=float(r["s_per_step"]),
                s_per_eval_step=float(r["s_per_eval_step"]) if r["s_per_eval_step"] else None,
                eval_length=float(r["eval_length"]) if r["eval_length"] else None,
                overhead_s=float(r["overhead_s"]),
                trials=int(r["trials"]),
                source=r["source"],
                kind=r.get("kind") or REFERENCE_KIND,
                settings=r.get("settings") or "",
            )
            out[(cost.algo, cost.task, cost.kind, cost.settings)] = cost
    return out


def load(
    path: Path | None = None, kind: str | None = None
) -> dict[tuple[str, str], tuple[Cost, ...]]:
    """The cost table for machines of ``kind`` (default: this one's), keyed by ``(algo, task)``:
    every row of the pair, that kind's first, then the reference kind's, then any other's
    (:func:`pick` chooses a trial's)."""
    kind = kind or machine_kind()
    rank = {kind: 0, REFERENCE_KIND: 1}
    out: dict[tuple[str, str], list[Cost]] = defaultdict(list)
    for key, cost in sorted(load_all(path).items(), key=lambda kv: (rank.get(kv[0][2], 2), kv[0])):
        out[key[:2]].append(cost)
    return {k: tuple(v) for k, v in out.items()}


def pick(spec: TrialSpec, table: Table) -> Cost | None:
    """The row that estimates ``spec``: of its own settings, else unrecorded ones, else other
    ones, each in the table's kind order (``None``: the pair has no row)."""
    rows = table.get((spec.algo, spec.task))
    if rows is None:
        return None
    if isinstance(rows, Cost):
        return rows
    want = settings_digest(spec.overrides)
    return min(rows, key=lambda c: 0 if c.settings == want else 1 if not c.settings else 2)


def save(table: Mapping[tuple[str, str, str, str], Cost], path: Path | None = None) -> None:
    """Write every row of ``table`` (keyed as :func:`load_all`'s)."""
    path = path or COSTS
    names = [f.name for f in fields(Cost)]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for key in sorted(table):
            row = asdict(table[key])
            for k in ("s_per_step", "s_per_eval_step", "overhead_s"):
                row[k] = "" if row[k] is None else f"{row[k]:.6g}"
            row["eval_length"] = "" if row["eval_length"] is None else f"{row['eval_length']:.1f}"
            w.writerow(row)
    tmp.replace(path)


def n_evaluations(total_steps: int, eval_every: int, next_eval: int = 0) -> int:
    """Evaluation points still ahead: every ``eval_every`` steps from ``next_eval`` below the
    budget, and the final one at the budget (the driver's schedule)."""
    return len(range(next_eval, total_steps, max(eval_every, 1))) + 1


def estimate(
    spec: TrialSpec,
    table: Table,
    *,
    from_step: int = 0,
    next_eval: int = 0,
) -> float | None:
    """Estimated seconds for ``spec`` from env step ``from_step`` on (``None``: not measured)."""
    cost = pick(spec, table)
    return None if cost is None else _seconds(spec, cost, from_step, next_eval)


def _seconds(spec: TrialSpec, cost: Cost, from_step: int, next_eval: int) -> float | None:
    """``estimate`` from the row already picked for ``spec``."""
    seconds = cost.overhead_s + (spec.total_steps - from_step) * cost.s_per_step
    if spec.eval_episodes > 0:
        if cost.s_per_eval_step is None or cost.eval_length is None:
            return None  # measured without evaluation episodes: their cost is unknown
        evals = n_evaluations(spec.total_steps, spec.eval_every, next_eval)
        seconds += evals * spec.eval_episodes * cost.eval_length * cost.s_per_eval_step
    return seconds


def makespan(seconds: Sequence[float], slots: int) -> float:
    """Wall time of running ``seconds`` on ``slots`` parallel slots, longest trial first, each on
    the slot that frees up first (greedy LPT scheduling, what Tune's FIFO order approximates)."""
    loads = [0.0] * max(slots, 1)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + s)
    return max(loads)


def available_cpus() -> int:
    """CPUs this process may use (affinity and cgroup-free count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return "<0.1" if seconds < 6 else f"{seconds / 60:.1f}"


def _seed_list(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    parts, seeds = [], sorted(seeds)
    start = prev = seeds[0]
    for s in [*seeds[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ",".join(parts)


@dataclass(frozen=True)
class Resume:
    """Where an unfinished trial picks up: its last checkpoint (or the start)."""

    step: int = 0
    next_eval: int = 0


def format_plan(
    specs: Sequence[TrialSpec],
    *,
    slots: int,
    slots_note: str,
    table: Table | None = None,
    resume: Mapping[str, Resume] | None = None,
) -> str:
    """The grid as a table, one row per (algorithm, task, budget, schedule, resume point), with
    the estimated wall time of the whole grid on ``slots`` parallel slots. ``resume`` maps a
    trial's label to where it picks up (a resumed run)."""
    table = load() if table is None else table
    resume = resume or {}
    groups: dict[tuple[Any, ...], list[TrialSpec]] = defaultdict(list)
    for s in specs:
        r = resume.get(s.label, Resume())
        key = (s.algo, s.task, s.total_steps, s.eval_every, s.eval_episodes, r.step, r.next_eval)
        groups[key].append(s)
    header = ["algorithm", "task", "seeds", "budget", "eval every", "eval eps", "min/trial"]
    if resume:
        header.insert(4, "picks up at")
    lines, estimates, unknown = [], [], 0
    foreign: dict[str, int] = defaultdict(int)  # trials estimated from another kind's rows
    other_settings = 0  # trials estimated from a row measured with other overrides
    kind = machine_kind()
    for (algo, task, steps, every, eps, from_step, next_eval), group in groups.items():
        cost = pick(group[0], table)
        est = None if cost is None else _seconds(group[0], cost, from_step, next_eval)
        if est is None or cost is None:
            unknown += len(group)
        else:
            estimates.extend([est] * len(group))
            if cost.kind != kind:
                foreign[cost.kind] += len(group)
            if cost.settings and cost.settings != settings_digest(group[0].overrides):
                other_settings += len(group)
        row = [algo, task, _seed_list([s.seed for s in group]), str(steps), str(every), str(eps)]
        if resume:
            row.insert(4, f"step {from_step}" if from_step else "start")
        lines.append([*row, _minutes(est)])
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    out += [fmt.format(*r).rstrip() for r in lines]
    total = makespan(estimates, slots) if estimates else 0.0
    trial_minutes = sum(estimates) / 60
    summary = (
        f"{len(specs)} trial(s), {trial_minutes:.1f} trial-minutes: estimated wall time "
        f"{total / 60:.1f} min on {slots} parallel slot(s) ({slots_note})"
    )
    for other, n in sorted(foreign.items()):
        summary += (
            f"\n  {n} trial(s) estimated from costs measured on {other} machines (this one: "
            f"{kind}; `make costs RUN=<run-id>` after a run here measures its own)"
        )
    if other_settings:
        summary += (
            f"\n  {other_settings} trial(s) estimated from costs measured with other settings "
            "(suite entry or SET), which can differ several-fold; `make costs RUN=<run-id>` after "
            "a run with these settings measures theirs"
        )
    if unknown:
        summary += (
            f"\n  + {unknown} trial(s) unestimated (`?`: no row in benchmark/{COSTS.name}; "
            "`make costs RUN=<run-id>` after a run of those pairs), not counted"
        )
    return "\n".join([*out, summary])


# -- refreshing the table from a finished run ---------------------------------------------------


EVAL_ROWS = ("eval_return", "eval_return_std", "eval_length")


def _trial_costs(curve: pd.DataFrame, eval_episodes: int, seconds: float) -> dict[str, float]:
    """Train time, eval time and overhead of one finished trial from its curve's clock.

    An evaluation's duration is the clock of its first row minus the clock of the row before it,
    where that row is the training episode that ended at the same env step (always true at step 0,
    at the budget, and wherever episodes end on the evaluation schedule). Evaluations that fell
    mid-episode are costed at the mean rate of the measured ones."""
    curve = curve.sort_values("wallclock_s", kind="stable")
    last_wall = float(curve.wallclock_s.max())
    total_steps = float(curve.env_step.max())
    evals = curve[curve.metric == "eval_return"] if eval_episodes > 0 else curve.iloc[:0]
    lengths = dict(
        zip(
            curve[curve.metric == "eval_length"].env_step,
            curve[curve.metric == "eval_length"].value,
            strict=False,
        )
    )
    measured_s = measured_steps = unmeasured_steps = 0.0
    for r in evals.itertuples():
        steps = lengths.get(r.env_step, math.nan) * eval_episodes
        before = curve[(curve.wallclock_s < r.wallclock_s) & ~curve.metric.isin(EVAL_ROWS)]
        if before.empty and r.env_step == 0:
            measured_s, measured_steps = measured_s + r.wallclock_s, measured_steps + steps
        elif not before.empty and before.iloc[-1].env_step == r.env_step:
            measured_s += r.wallclock_s - before.iloc[-1].wallclock_s
            measured_steps += steps
        else:
            unmeasured_steps += steps
    eval_steps = measured_steps + unmeasured_steps
    eval_s = measured_s / measured_steps * eval_steps if measured_steps else 0.0
    return {
        "train_steps": total_steps,
        "train_s": max(last_wall - eval_s, 0.0),
        "eval_s": eval_s,
        "eval_steps": eval_steps,
        "eval_episodes": float(len(evals)) * eval_episodes,
        "overhead_s": max(seconds - last_wall, 0.0),
    }


def measure(run_dir: Path) -> dict[tuple[str, str, str], Cost]:
    """Cost rows for every (algo, task, settings) with finished trials in ``run_dir``.

    Reads what a run leaves: ``trials.json`` (budgets, evaluation schedule), ``trials.csv``
    (``seconds`` from each trial's status.json) and ``curves.csv`` (``wallclock_s``,
    ``steps_per_s``, ``eval_length``)."""
    specs = {
        (d["algo"], d["task"], d["seed"]): d
        for d in json.loads((run_dir / "trials.json").read_text())
    }
    trials = pd.read_csv(run_dir / "trials.csv")
    curves = pd.read_csv(run_dir / "curves.csv")
    meta = json.loads((run_dir / "meta.json").read_text())
    kind = (meta.get("hardware") or {}).get("machine_kind") or machine_kind()
    commit = (meta.get("git") or {}).get("commit") or "unknown"
    dirty = " dirty" if (meta.get("git") or {}).get("dirty") else ""
    source = f"{run_dir.name}@{commit[:7]}{dirty}"
    sums: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in trials[trials.status == "done"].itertuples():
        spec = specs.get((t.algo, t.env, int(t.seed)))
        curve = curves[(curves.algo == t.algo) & (curves.env == t.env) & (curves.seed == t.seed)]
        if spec is None or curve.empty:
            continue
        acc = sums[(t.algo, t.env, settings_digest(spec.get("overrides") or {}))]
        for k, v in _trial_costs(curve, int(spec["eval_episodes"]), float(t.seconds)).items():
            acc[k] += v
        acc["trials"] += 1
    out = {}
    for (algo, task, settings), a in sums.items():
        has_eval = a["eval_steps"] > 0
        out[(algo, task, settings)] = Cost(
            algo=algo,
            task=task,
            s_per_step=a["train_s"] / a["train_steps"],
            s_per_eval_step=a["eval_s"] / a["eval_steps"] if has_eval else None,
            eval_length=a["eval_steps"] / a["eval_episodes"] if has_eval else None,
            # without evaluation episodes, the time outside training is per-trial overhead
            overhead_s=(a["overhead_s"] + (0.0 if has_eval else a["eval_s"])) / a["trials"],
            trials=int(a["trials"]),
            source=source,
            kind=kind,
            settings=settings,
        )
    return out


def refresh(run_dir: Path, path: Path | None = None) -> dict[tuple[str, str, str], Cost]:
    """Replace the rows of ``run_dir``'s measured pairs, for the machine kind it ran on (its
    ``meta.json``; a run from before kinds were recorded counts as this machine's) and the
    settings it ran with, in the table at ``path``; returns them."""
    for name in ("trials.json", "trials.csv", "curves.csv", "meta.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(
                f"{run_dir / name} is missing: RUN= must name a run that has finished "
                "(make benchmark RESUME=<run-id> completes an interrupted one)"
            )
    rows = measure(run_dir)
    table = load_all(path)
    table.update({(c.algo, c.task, c.kind, c.settings): c for c in rows.values()})
    save(table, path)
    return rows


def describe(cost: Cost) -> str:
    per_eval = (
        "no eval episodes"
        if cost.s_per_eval_step is None
        else f"{cost.s_per_eval_step * 1e3:.3g} ms/eval step x {cost.eval_length:.0f}"
    )
    return (
        f"{cost.algo:>8} {cost.task:<20} {cost.s_per_step * 1e3:.3g} ms/step, {per_eval}, "
        f"{cost.overhead_s:.1f} s overhead ({cost.trials} trial(s), {cost.source}, {cost.kind}, "
        f"settings {cost.settings or '?'})"
    )
