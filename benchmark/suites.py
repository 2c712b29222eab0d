"""Suites (YAML) and the command-line grid: expanded into validated :class:`TrialSpec` lists.

A suite file (``benchmark/suites/<name>.yaml``)::

    description: what it is for
    seeds: 3                      # default number of seeds (0..seeds-1)
    eval_every: 1000
    eval_episodes: 5
    tasks:                        # per-task budget and evaluation schedule
      pendulum: {steps: 15000}
      inverted_pendulum: {steps: 3000, eval_every: 500}
    algos:                        # per-algorithm overrides of the config dataclass
      rs:
        default: {population: 500}
        pendulum: {horizon: 20}
        steps: {pendulum: 5000}   # per-task budget for this algorithm only
        eval_episodes: {pendulum: 1}   # per-task evaluation schedule for this algorithm only
        eval_every: {pendulum: 1000}   #   (planners pay for every evaluation step)
    grid:                         # the default pairs
      - [[random, sac, rs], [pendulum, cartpole_swingup]]
      - [[lqr], [inverted_pendulum]]

Everything is validated here, before Ray starts: unknown names ("did you mean"), unknown or
ill-typed hyperparameters, algorithm/task pairs lacking a required capability.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from algorithms import ALGORITHMS
from algorithms.api import ConfigError
from benchmark.driver import TrialSpec, resolve
from envs import TASKS

SUITES_DIR = Path(__file__).parent / "suites"
TOP_KEYS = {
    "description",
    "seeds",
    "eval_every",
    "eval_episodes",
    "default_steps",
    "tasks",
    "algos",
    "grid",
}
TASK_KEYS = {"steps", "eval_every", "eval_episodes"}
#: keys of an ``algos: <algo>:`` entry besides task names
ALGO_KEYS = {"default", *TASK_KEYS}


class SuiteError(ConfigError):
    """A malformed suite file or command-line grid."""


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str) -> dict[str, Any]:
    """Read a suite by name (``quick``) or path, checking its top-level structure."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise SuiteError(
            f"unknown suite {name_or_path!r}. Valid suites: {', '.join(available_suites())}"
        )
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown keys {sorted(unknown)}; valid: {sorted(TOP_KEYS)}")
    for task, opts in (data.get("tasks") or {}).items():
        TASKS[task]
        bad = set(opts or {}) - TASK_KEYS
        if bad:
            raise SuiteError(
                f"{path}: task {task!r} has unknown keys {sorted(bad)}; valid: {sorted(TASK_KEYS)}"
            )
    for algo, opts in (data.get("algos") or {}).items():
        ALGORITHMS[algo]
        for key, value in (opts or {}).items():
            if key not in ALGO_KEYS and key not in TASKS:
                raise SuiteError(
                    f"{path}: algos.{algo} has unknown key {key!r}; valid: {sorted(ALGO_KEYS)} "
                    f"or a task name ({', '.join(TASKS)})"
                )
            if key in TASK_KEYS:
                for task in value or {}:
                    TASKS[task]
    data["name"] = path.stem
    return data


@dataclass(frozen=True)
class GridRequest:
    """What the user asked for on the command line (``None`` = the suite's default)."""

    suite: str = "quick"
    algos: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    seeds: int | None = None
    steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int | None = None
    overrides: Mapping[str, Mapping[str, Any]] | None = None
    """``{algo: {key: value}}`` from ``--set algo.key=value``; applied last."""
    device: str = "auto"
    threads: int = 1


def parse_set(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sac.lr=1e-3", "rs.population=200"]`` -> ``{"sac": {"lr": 0.001}, "rs": {...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        algo, dot, field = key.partition(".")
        if not (eq and dot and algo and field):
            raise SuiteError(f"--set {item!r}: expected ALGO.KEY=VALUE, e.g. sac.lr=0.001")
        ALGORITHMS[algo]
        out.setdefault(algo, {})[field] = yaml.safe_load(raw)
    return out


def _pairs(req: GridRequest, suite: Mapping[str, Any]) -> list[tuple[str, str]]:
    grid = [
        (a, t)
        for algos, tasks in suite.get("grid") or []
        for a, t in itertools.product(algos, tasks)
    ]
    for a in req.algos or []:
        ALGORITHMS[a]
    for t in req.tasks or []:
        TASKS[t]
    if req.algos and req.tasks:
        return list(itertools.product(req.algos, req.tasks))
    if req.algos:
        pairs = [(a, t) for a, t in grid if a in req.algos]
        missing = [a for a in req.algos if all(p[0] != a for p in pairs)]
        if missing:
            raise SuiteError(
                f"suite {suite['name']!r} runs {', '.join(missing)} on no task; name the tasks too, "
                f"e.g. ENVS=pendulum. Tasks: {', '.join(TASKS)}"
            )
        return pairs
    if req.tasks:
        pairs = [(a, t) for a, t in grid if t in req.tasks]
        missing = [t for t in req.tasks if all(p[1] != t for p in pairs)]
        if missing:
            raise SuiteError(
                f"suite {suite['name']!r} has no algorithm for {', '.join(missing)}; name them too, "
                f"e.g. ALGOS=sac. Algorithms: {', '.join(ALGORITHMS)}"
            )
        return pairs
    return grid


def _first(*values: Any) -> Any:
    """The first value that is not ``None`` (``0`` counts: ``eval_episodes: 0`` is allowed)."""
    return next(v for v in values if v is not None)


def expand(req: GridRequest) -> list[TrialSpec]:
    """The validated trial list for ``req``. Raises :class:`ConfigError` on any bad input."""
    suite = load_suite(req.suite)
    pairs = list(dict.fromkeys(_pairs(req, suite)))
    if not pairs:
        raise SuiteError(f"suite {suite['name']!r} with this selection has no trials")
    seeds = req.seeds if req.seeds is not None else int(suite.get("seeds", 1))
    if seeds < 1:
        raise SuiteError(f"SEEDS must be >= 1, got {seeds}")
    task_opts = suite.get("tasks") or {}
    algo_opts = suite.get("algos") or {}

    specs: list[TrialSpec] = []
    problems: list[str] = []
    for algo, task in pairs:
        t_opts = task_opts.get(task) or {}
        a_opts = algo_opts.get(algo) or {}
        overrides = {**(a_opts.get("default") or {}), **(a_opts.get(task) or {})}
        overrides.update((req.overrides or {}).get(algo, {}))
        steps = req.steps or (a_opts.get("steps") or {}).get(task) or t_opts.get("steps")
        steps = int(steps or suite.get("default_steps") or 0)
        base = TrialSpec(
            algo=algo,
            task=task,
            seed=0,
            total_steps=steps,
            eval_every=int(
                _first(
                    req.eval_every,
                    (a_opts.get("eval_every") or {}).get(task),
                    t_opts.get("eval_every"),
                    suite.get("eval_every"),
                    1000,
                )
            ),
            eval_episodes=int(
                _first(
                    req.eval_episodes,
                    (a_opts.get("eval_episodes") or {}).get(task),
                    t_opts.get("eval_episodes"),
                    suite.get("eval_episodes"),
                    5,
                )
            ),
            overrides=overrides,
            device=req.device,
            threads=req.threads,
        )
        try:
            resolve(base)
        except ConfigError as e:
            problems.append(str(e))
            continue
        if steps <= 0:
            problems.append(
                f"no budget for {algo} on {task} in suite {suite['name']!r}: pass STEPS=..."
            )
            continue
        specs.extend(TrialSpec(**{**asdict(base), "seed": s}) for s in range(seeds))
    if problems:
        raise ConfigError("the benchmark cannot start:\n  - " + "\n  - ".join(problems))
    return specs
