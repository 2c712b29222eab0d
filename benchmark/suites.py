"""Suites (YAML) and the command-line grid: expanded into validated :class:`TrialSpec` lists.

A suite file (``benchmark/suites/<name>.yaml``)::

    description: what it is for
    seeds: 3                      # default seeds: 3 means 0,1,2; also "3-4" or "0,2,5"
    eval_every: 1000
    eval_episodes: 5
    tasks:                        # per-task budget and evaluation schedule
      pendulum: {steps: 15000}
      inverted_pendulum: {steps: 3000, eval_every: 500}
    algos:                        # per-algorithm overrides of the config dataclass
      rs:
        default: {population: 500, model: {hidden: 400}}   # nested configs: a mapping ...
        pendulum: {horizon: 20, model.layers: 3}            # ... or dotted keys, merged
        steps: {pendulum: 5000}   # per-task budget for this algorithm only
        eval_episodes: {pendulum: 1}   # per-task evaluation schedule for this algorithm only
        eval_every: {pendulum: 1000}   #   (planners pay for every evaluation step)
        seeds: {pendulum: 1}      # per-task seeds for this algorithm only (SEEDS= still wins)
    grid:                         # the default pairs
      - [[random, sac, rs], [pendulum, cartpole_swingup]]
      - [[lqr], [inverted_pendulum]]

Everything is validated here, before Ray starts and before a results folder exists: the suite
file's structure and types, budgets and seeds, unknown names ("did you mean"), unknown, ill-typed
or out-of-range hyperparameters, ``SET`` keys for algorithms outside the grid, and
algorithm/task pairs lacking a required capability. Each problem is one line naming the fix.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from algorithms import ALGORITHMS
from algorithms.api import ConfigError, flatten_overrides, float_literal
from benchmark.driver import TrialSpec, resolve
from envs import TASKS
from envs.registry import UnknownNameError

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
#: keys of an ``algos: <algo>:`` entry besides task names (``seeds``: per-task seeds of this
#: algorithm, for pairs too slow for the suite's seeds; ``SEEDS=`` still wins)
ALGO_KEYS = {"default", "seeds", *TASK_KEYS}
#: the smallest valid value of each integer setting, and what it counts (for the error message)
INT_SETTINGS = {
    "steps": (1, "env steps"),
    "default_steps": (1, "env steps"),
    "eval_every": (1, "env steps"),
    "eval_episodes": (0, "episodes per evaluation"),
}
#: how the budget settings are named on the command line (``make`` variable and flag)
CLI_NAMES = {
    "steps": "STEPS (--steps)",
    "eval_every": "--eval-every",
    "eval_episodes": "--eval-episodes",
}


class SuiteError(ConfigError):
    """A malformed suite file or command-line grid."""


def _problems(header: str, problems: Sequence[str]) -> SuiteError:
    """One problem as one line; several as a header and one self-contained line each."""
    if len(problems) == 1:
        return SuiteError(problems[0])
    return SuiteError(f"{header}:\n  - " + "\n  - ".join(problems))


def parse_int(value: Any, what: str, *, minimum: int, unit: str) -> int:
    """An integer setting from the command line (text) or a suite (YAML), at least ``minimum``.

    ``what`` names the setting as the user wrote it (``STEPS (--steps)``, ``suite.yaml: steps``).
    """
    number = value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
        kind = f"a positive integer number of {unit}"
        kind = kind if minimum == 1 else f"an integer >= {minimum} ({unit})"
        raise SuiteError(f"{what} must be {kind}, got {value!r}")
    return number


def parse_seeds(value: Any, what: str = "SEEDS (--seeds)") -> tuple[int, ...]:
    """Seeds from a count or a range: ``3`` -> (0, 1, 2); ``"3-4"`` -> (3, 4); ``"0,2,5"``."""
    text = value.strip() if isinstance(value, str) else None
    seeds: tuple[int, ...] | None = None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        seeds = tuple(range(value))
    elif text is not None and re.fullmatch(r"\d+", text) and int(text) >= 1:
        seeds = tuple(range(int(text)))
    elif text is not None and (m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)):
        low, high = int(m[1]), int(m[2])
        seeds = tuple(range(low, high + 1)) if low <= high else None
    elif text is not None and re.fullmatch(r"\d+(\s*,\s*\d+)+", text):
        seeds = tuple(int(s) for s in text.split(","))
        seeds = seeds if len(set(seeds)) == len(seeds) else None
    elif isinstance(value, (list, tuple)) and value:
        if all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            seeds = tuple(value) if len(set(value)) == len(value) else None
    if not seeds:
        raise SuiteError(
            f"{what} must be a number of seeds N >= 1 (seeds 0..N-1), a range A-B with A <= B "
            f"(e.g. 3-4) or a list of distinct seeds (e.g. 0,2,5), got {value!r}"
        )
    return seeds


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SuiteError(f"{path}{line}: invalid YAML ({problem}); fix the syntax there") from None


def _names(value: Any, registry: Any, where: str, problems: list[str]) -> list[str]:
    """The known names in ``value`` (a list of names); a problem for anything else."""
    if not isinstance(value, list):
        problems.append(f"{where} must be a list of {registry.kind} names, got {value!r}")
        return []
    known = []
    for name in value:
        if not isinstance(name, str):
            problems.append(f"{where}: {name!r} is not a {registry.kind} name")
            continue
        try:
            registry[name]
            known.append(name)
        except UnknownNameError as e:
            problems.append(f"{where}: {e}")
    return known


def _check_suite(path: Path, data: dict[str, Any], problems: list[str]) -> None:
    """Append one self-contained line per problem of a parsed suite to ``problems``."""
    unknown = sorted(map(str, set(data) - TOP_KEYS))
    if unknown:
        problems.append(f"{path}: unknown keys {unknown}; valid: {sorted(TOP_KEYS)}")

    def int_setting(value: Any, key: str, where: str) -> None:
        minimum, unit = INT_SETTINGS[key]
        try:
            parse_int(value, f"{path}: {where}", minimum=minimum, unit=unit)
        except SuiteError as e:
            problems.append(str(e))

    if "description" in data and not isinstance(data["description"], str):
        problems.append(f"{path}: description must be text, got {data['description']!r}")
    if data.get("seeds") is not None:
        try:
            data["seeds"] = parse_seeds(data["seeds"], f"{path}: seeds")
        except SuiteError as e:
            problems.append(str(e))
    for key in ("eval_every", "eval_episodes", "default_steps"):
        if data.get(key) is not None:
            int_setting(data[key], key, key)

    tasks = data.get("tasks") or {}
    if not isinstance(tasks, dict):
        problems.append(f"{path}: tasks must be a mapping task -> {{steps: ...}}, got {tasks!r}")
        tasks = data["tasks"] = {}
    for task, opts in tasks.items():
        where = f"tasks.{task}"
        if not _names([task], TASKS, f"{path}: tasks", problems):
            continue
        if not isinstance(opts or {}, dict):
            problems.append(f"{path}: {where} must be a mapping like {{steps: 5000}}, got {opts!r}")
            tasks[task] = None
            continue
        bad = sorted(map(str, set(opts or {}) - TASK_KEYS))
        if bad:
            problems.append(f"{path}: {where} has unknown keys {bad}; valid: {sorted(TASK_KEYS)}")
        for key in TASK_KEYS & set(opts or {}):
            int_setting(opts[key], key, f"{where}.{key}")

    algos = data.get("algos") or {}
    if not isinstance(algos, dict):
        problems.append(f"{path}: algos must be a mapping algorithm -> settings, got {algos!r}")
        algos = data["algos"] = {}
    for algo, opts in algos.items():
        if not _names([algo], ALGORITHMS, f"{path}: algos", problems):
            continue
        if not isinstance(opts or {}, dict):
            problems.append(
                f"{path}: algos.{algo} must be a mapping like {{default: {{...}}}}, got {opts!r}"
            )
            algos[algo] = None
            continue
        for key, value in (opts or {}).items():
            where = f"algos.{algo}.{key}"
            if key not in ALGO_KEYS and key not in TASKS:
                problems.append(
                    f"{path}: algos.{algo} has unknown key {key!r}; valid: {sorted(ALGO_KEYS)} "
                    f"or a task name ({', '.join(TASKS)})"
                )
            elif not isinstance(value or {}, dict):
                like = {"seeds": "{pendulum: 1}"}.get(key, "{pendulum: 5000}")
                like = like if key in ALGO_KEYS - {"default"} else "{lr: 0.001}"
                problems.append(f"{path}: {where} must be a mapping like {like}, got {value!r}")
                opts[key] = None
            elif key == "seeds":
                for task, n in (value or {}).items():
                    if _names([task], TASKS, f"{path}: {where}", problems):
                        try:
                            value[task] = parse_seeds(n, f"{path}: {where}.{task}")
                        except SuiteError as e:
                            problems.append(str(e))
            elif key in TASK_KEYS:
                for task, n in (value or {}).items():
                    if _names([task], TASKS, f"{path}: {where}", problems):
                        int_setting(n, key, f"{where}.{task}")

    grid = data.get("grid") or []
    if not isinstance(grid, list):
        problems.append(
            f"{path}: grid must be a list of [[algorithms], [tasks]] pairs, e.g. "
            f"[[[sac, rs], [pendulum]]], got {grid!r}"
        )
        grid = []
    for i, entry in enumerate(grid):
        where = f"{path}: grid entry {i + 1}"
        if not (
            isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, list) for x in entry)
        ):
            problems.append(
                f"{where} must be a pair [[algorithms], [tasks]], e.g. [[sac, rs], [pendulum]], "
                f"got {entry!r}"
            )
            continue
        _names(entry[0], ALGORITHMS, f"{where}, algorithms", problems)
        _names(entry[1], TASKS, f"{where}, tasks", problems)


def load_suite(name_or_path: str) -> dict[str, Any]:
    """Read a suite by name (``quick``) or path, checking its structure and types.

    ``seeds`` is returned as the tuple of seed ints. Raises :class:`SuiteError` listing every
    problem, one line each, naming the file and the key.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise SuiteError(
            f"unknown suite {name_or_path!r}. Valid suites: {', '.join(available_suites())}"
        )
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SuiteError(
            f"{path}: a suite is a mapping with keys {sorted(TOP_KEYS)}, got {type(data).__name__}"
        )
    problems: list[str] = []
    _check_suite(path, data, problems)
    if problems:
        raise _problems(f"suite {path} has {len(problems)} problems", problems)
    data["name"] = path.stem
    return data


@dataclass(frozen=True)
class GridRequest:
    """What the user asked for on the command line (``None`` = the suite's default)."""

    suite: str = "quick"
    algos: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    seeds: int | tuple[int, ...] | None = None
    """The seeds to run: a tuple of seed ints (``SEEDS=3-4`` -> ``(3, 4)``), or a count N for
    seeds 0..N-1."""
    steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int | None = None
    overrides: Mapping[str, Mapping[str, Any]] | None = None
    """``{algo: {key: value}}`` from ``--set algo.key=value``; applied last."""
    device: str = "auto"
    threads: int = 1


def parse_set(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sac.lr=1e-3", "mbpo.model.hidden=400"]`` -> ``{"sac": {"lr": 0.001}, "mbpo":
    {"model.hidden": 400}}``: everything after the algorithm is the dotted path into its config.

    Values are YAML (``true``, ``[200, 200]``, ``"true"``); numbers in scientific notation are
    floats (YAML 1.1 alone would read ``1e-3`` as text).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        algo, dot, field = key.partition(".")
        if not (eq and dot and algo and field):
            raise SuiteError(f"SET {item!r}: expected ALGO.KEY=VALUE, e.g. sac.lr=0.001")
        ALGORITHMS[algo]
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise SuiteError(
                f"SET {item!r}: the value {raw!r} is not valid YAML; write a number, true/false, "
                "a list such as [200, 200] or quoted text"
            ) from None
        number = float_literal(value)
        out.setdefault(algo, {})[field] = value if number is None else number
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


def parse_setting(value: str | int | None, key: str) -> int | None:
    """A command-line budget setting (``steps``, ``eval_every``, ``eval_episodes``) or ``None``."""
    if value is None:
        return None
    minimum, unit = INT_SETTINGS[key]
    return parse_int(value, CLI_NAMES[key], minimum=minimum, unit=unit)


def _check_request(req: GridRequest) -> None:
    """The command-line budget settings (also when ``req`` is built in code)."""
    parse_setting(req.steps, "steps")
    parse_setting(req.eval_every, "eval_every")
    parse_setting(req.eval_episodes, "eval_episodes")


def fast_bf16(device: str) -> bool:
    """Whether ``device`` (a request's ``auto``, ``cpu`` or ``cuda``) multiplies bf16 natively:
    a CUDA GPU with bf16 support, or a CPU with AVX-512 BF16 / AMX. Elsewhere bf16 is emulated
    and ~13x slower than fp32 (a [5, 2000, 200] x [5, 200, 200] batched matmul on an AVX2 EPYC:
    291 against 22 ms)."""
    import torch

    from algorithms.models.layers import cpu_has_fast_bf16

    if device != "cpu" and torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_fast_bf16()


def resolve_auto_bf16(overrides: Mapping[str, Any], device: str) -> dict[str, Any]:
    """``bf16: auto`` (any dotted key ending in ``bf16``, in a suite or a SET) becomes ``true``
    where the trial's device runs bf16 natively (:func:`fast_bf16`) and ``false`` elsewhere, so
    that a suite's speed setting never slows a machine down; the trial records the choice."""
    out = dict(overrides)
    for key, value in overrides.items():
        if key.rsplit(".", 1)[-1] == "bf16" and value == "auto":
            out[key] = fast_bf16(device)
    return out


def expand(req: GridRequest) -> list[TrialSpec]:
    """The validated trial list for ``req``. Raises :class:`ConfigError` on any bad input."""
    _check_request(req)
    req_seeds = parse_seeds(req.seeds) if req.seeds is not None else None
    suite = load_suite(req.suite)
    pairs = list(dict.fromkeys(_pairs(req, suite)))
    if not pairs:
        raise SuiteError(f"suite {suite['name']!r} with this selection has no trials")
    task_opts = suite.get("tasks") or {}
    algo_opts = suite.get("algos") or {}

    problems: list[str] = []
    grid_algos = list(dict.fromkeys(a for a, _ in pairs))
    for algo, values in (req.overrides or {}).items():
        if algo not in grid_algos:
            sets = " ".join(f"{algo}.{k}={v}" for k, v in values.items())
            problems.append(
                f"SET {sets} names algorithm {algo!r}, which is not in this grid "
                f"({', '.join(grid_algos)}); drop it or add it to ALGOS"
            )
    specs: list[TrialSpec] = []
    for algo, task in pairs:
        t_opts = task_opts.get(task) or {}
        a_opts = algo_opts.get(algo) or {}
        # one spelling (dotted paths), so that a task's or SET's nested key wins over the default
        overrides = {
            **flatten_overrides(a_opts.get("default") or {}),
            **flatten_overrides(a_opts.get(task) or {}),
            **flatten_overrides((req.overrides or {}).get(algo, {})),
        }
        overrides = resolve_auto_bf16(overrides, req.device)
        steps = _first(
            req.steps,
            (a_opts.get("steps") or {}).get(task),
            t_opts.get("steps"),
            suite.get("default_steps"),
            0,
        )
        base = TrialSpec(
            algo=algo,
            task=task,
            seed=0,
            total_steps=int(steps),
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
                f"no budget for {algo} on {task} in suite {suite['name']!r}: pass STEPS=N "
                f"(a positive number of env steps) or add tasks: {{{task}: {{steps: N}}}} to it"
            )
            continue
        seeds = req_seeds or (a_opts.get("seeds") or {}).get(task) or suite.get("seeds") or (0,)
        specs.extend(TrialSpec(**{**asdict(base), "seed": s}) for s in seeds)
    if problems:
        raise _problems("the benchmark cannot start", problems)
    return specs
