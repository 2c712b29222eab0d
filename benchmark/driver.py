"""Run one trial (algorithm x task x seed) without Ray.

The driver owns the environments, the budget, evaluation and seeding, so every algorithm is measured
the same way. It emits tidy rows ``{"env_step", "wallclock_s", "metric", "value"}``:

- ``eval_return`` / ``eval_return_std`` / ``eval_length``: deterministic policy (``explore=False``)
  on a separate env, ``eval_episodes`` episodes from the same fixed initial-state seeds at every
  evaluation point (common random numbers across algorithms), every ``eval_every`` env steps and at
  step 0;
- ``train_return`` / ``train_length``: each finished training episode;
- ``steps_per_s``: training throughput since the previous evaluation;
- ``value_pred`` / ``value_return`` / ``value_bias``: for agents with a value function
  (:meth:`~algorithms.api.Algorithm.state_value`), its mean prediction at the evaluation start
  states, the mean discounted return the evaluation episodes actually obtained from them, and the
  difference (value overestimation when positive);
- the algorithm's own metrics, from three sources: the mean of ``update()`` values since the
  previous evaluation (logged at the evaluation), ``on_episode_end()`` values at each episode end,
  ``eval_metrics()`` at each evaluation.

One value per (env step, metric): a plugin returns each metric name from one hook only, the one
where the value belongs, and never repeats a name in another (a value that is "the latest refit's
holdout error" is logged with the refit, not again at the evaluation). Statistics of a model refit
(``model_err_h{k}``, ``model_holdout_mse``, ``model_train_loss``, ``model_epochs``) come from the
hook that schedules the refit: ``update()`` for MBPO and Dyna (the mean over the refits since the
previous evaluation), ``on_episode_end()`` for the planners' data loop (the mean over the refits of
that episode). ``eval_metrics()`` holds what only exists at an evaluation (planner statistics
since the previous one). :func:`run_trial` refuses a second value for the same (env step, metric)
with :class:`DuplicateMetric` (a plugin bug), and ``benchmark.collect`` refuses one in a run.

With a ``trial_dir`` it checkpoints at the first training-episode boundary after each evaluation,
and at every training-episode end once ``checkpoint_every_s`` seconds of trial time have passed
since the last save, and resumes from there: every training episode resets with a seed derived from
(seed, episode index), so a resumed trial continues exactly where the uninterrupted one would have
been. A training episode is the unit of resumption: an interruption loses the episode in progress
(the environments' internal state is not saved), never more than ``checkpoint_every_s`` plus one
episode of work.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from algorithms import AlgoConfig, Algorithm, RunContext, Transition, get_algorithm
from algorithms.api import ConfigError, apply_overrides
from envs import TASKS, TaskSpec

log = logging.getLogger("mbrl_bench.driver")

Row = dict[str, Any]


class TrialDiverged(RuntimeError):
    """A metric, action or observation became NaN or infinite."""


class DuplicateMetric(RuntimeError):
    """A trial emitted a second value for the same (env step, metric): a plugin bug."""


@dataclass(frozen=True)
class TrialSpec:
    """What one trial runs. Everything here is plain data (it travels through Ray)."""

    algo: str
    task: str
    seed: int
    total_steps: int
    """Budget in training env steps."""
    eval_every: int = 1000
    """Evaluate every this many env steps (and at step 0 and at the end)."""
    eval_episodes: int = 5
    """Episodes per evaluation point. 0: no evaluation episodes (the curve is ``train_return``:
    for planners whose training episodes are already deterministic, and for oracle figures)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Hyperparameter overrides, validated against the algorithm's config dataclass."""
    device: str = "auto"
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available)."""
    threads: int | None = 1
    """torch intra-op threads for this trial (``None`` leaves torch's default)."""

    @property
    def label(self) -> str:
        return f"{self.algo}|{self.task}|s{self.seed}"


_TASK_SPECS: dict[str, tuple[Any, TaskSpec]] = {}


def task_spec(name: str) -> TaskSpec:
    """``TASKS[name].resolve()``, once per process: resolving builds the task's env, and the grid
    check, the plan's resolved configs and the trial itself all need it."""
    entry = TASKS[name]
    cached = _TASK_SPECS.get(name)
    if cached is None or cached[0] is not entry:  # a task registered again (tests) is re-read
        cached = _TASK_SPECS[name] = (entry, entry.resolve())
    return cached[1]


def resolve_config(spec: TrialSpec) -> tuple[type[Algorithm], AlgoConfig]:
    """The plugin class and the config the trial runs with: the trial's overrides applied, the
    task's capabilities checked, then every per-task value filled in
    (:meth:`~algorithms.api.Algorithm.resolve_config`). Raises on bad input."""
    cls = get_algorithm(spec.algo)
    task = task_spec(spec.task)
    config = apply_overrides(
        cls.Config(), dict(spec.overrides), where=f"{spec.algo} on {task.name}"
    )
    cls.check_task(task, config)
    return cls, cls.resolve_config(task, config)


def resolve(spec: TrialSpec) -> tuple[type[Algorithm], TaskSpec, AlgoConfig]:
    """Check a trial before running it: names, overrides and capabilities. Raises on bad input.
    Returns the plugin class, the task and the resolved config."""
    cls, config = resolve_config(spec)
    return cls, task_spec(spec.task), config


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _episode_seed(seed: int, stream: int, index: int) -> int:
    """A reset seed for episode ``index`` of ``stream`` (0 train, 1 eval) of trial ``seed``."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def _check_finite(label: str, what: str, value: Any) -> None:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise TrialDiverged(f"{label}: {what} is not finite ({value!r})")


def _env_action(task: TaskSpec, action: np.ndarray | int) -> tuple[Any, np.ndarray]:
    """The action for ``env.step`` and its ``[A]`` float record for the transition."""
    if task.discrete:
        idx = int(np.asarray(action).reshape(-1)[0])
        return idx, np.asarray([idx], np.float32)
    a = np.clip(np.asarray(action, np.float32).reshape(-1), task.act_low, task.act_high)
    return a, a


class Evaluation(NamedTuple):
    """What :func:`evaluate` measured over its episodes."""

    mean: float
    """Mean undiscounted return."""
    std: float
    """Its standard deviation over the episodes."""
    length: float
    """Mean episode length."""
    value_pred: float
    """Mean of the agent's :meth:`~algorithms.api.Algorithm.state_value` at the start states
    (``nan`` without a value function)."""
    value_return: float
    """Mean ``value_discount``-discounted return actually obtained from them (``nan`` likewise;
    cut at the time limit, so it misses at most ``gamma^T`` times the value after it)."""


def evaluate(
    algo: Algorithm,
    env: Any,
    task: TaskSpec,
    seeds: Iterable[int],
    *,
    explore: bool = False,
) -> Evaluation:
    """The deterministic policy for one episode per seed: returns, lengths and, for an agent
    with a value function, its prediction at each start state against the discounted return.

    ``explore=True`` acts with the training policy instead (a diagnostic of
    ``python -m benchmark evaluate --explore``; the transitions still go to ``observe_eval``, never
    to the replay)."""
    returns, lengths, preds, discounted = [], [], [], []
    gamma = algo.value_discount
    for s in seeds:
        obs, info = env.reset(seed=s)
        algo.reset(explore=explore)
        pred = algo.state_value(obs)
        total, disc, weight, n, done = 0.0, 0.0, 1.0, 0, False
        while not done:
            action, sent = _env_action(task, algo.act(obs, explore=explore, info=info))
            prev = obs
            obs, reward, terminated, truncated, info = env.step(action)
            algo.observe_eval(
                Transition(prev, sent, float(reward), obs, bool(terminated), bool(truncated))
            )
            total += float(reward)
            if gamma is not None:
                disc += weight * float(reward)
                weight *= gamma
            n += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(n)
        if pred is not None and gamma is not None:
            preds.append(pred)
            discounted.append(disc)
    nan = float("nan")
    return Evaluation(
        float(np.mean(returns)),
        float(np.std(returns)),
        float(np.mean(lengths)),
        float(np.mean(preds)) if preds else nan,
        float(np.mean(discounted)) if discounted else nan,
    )


def run_trial(
    spec: TrialSpec,
    *,
    trial_dir: str | Path | None = None,
    report: Callable[[list[Row], list[Row]], None] | None = None,
    checkpoint_every_s: float = 120.0,
    progress: dict[str, Any] | None = None,
) -> list[Row]:
    """Run ``spec`` to its budget and return every row it emitted.

    ``report(new_rows, all_rows)`` is called after each evaluation (the Ray adapter forwards to
    Tune; the trial folder rewrites its curve).
    With ``trial_dir``, a checkpoint there is resumed, and refreshed at the first training-episode
    end after each evaluation and at every episode end ``checkpoint_every_s`` seconds of trial time
    after the last save (``checkpoint.pt``, with ``checkpoint.json`` saying where it stands).
    ``progress``, when given, is kept up to date for a progress printer in another thread:
    ``step``, ``eval_return``, ``train_return``, ``t0`` (``time.perf_counter()`` at trial time 0),
    ``start_step`` and ``start_time`` (where and when this process started or resumed).
    """
    cls, task, config = resolve(spec)
    _set_threads(spec)
    torch.manual_seed(spec.seed)  # module initialisation; all sampling uses the ctx generators
    ctx = RunContext.from_seed(spec.seed, device=_device(spec.device), total_steps=spec.total_steps)
    algo = cls(task, config, ctx)
    env, eval_env = task.make_env(), task.make_env()
    eval_seeds = [_episode_seed(spec.seed, 1, k) for k in range(spec.eval_episodes)]

    rows: list[Row] = []
    step, episode, elapsed0, next_eval = 0, 0, 0.0, 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    ckpt_path = Path(trial_dir) / "checkpoint.pt" if trial_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        algo.load_state_dict(state["algo"])
        ctx.load_generator_state(state)
        torch.set_rng_state(state["torch_global"])
        rows, step, episode, elapsed0 = (
            state["rows"],
            state["step"],
            state["episode"],
            state["elapsed"],
        )
        next_eval, sums, counts = state["next_eval"], state["sums"], state["counts"]
        log.info("%s: resumed at env step %d", spec.label, step)

    t0 = time.perf_counter() - elapsed0
    last_save = time.perf_counter()
    if progress is not None:
        progress.update(step=step, t0=t0, start_step=step, start_time=time.perf_counter())
        for metric in ("eval_return", "train_return"):
            progress[metric] = next(
                (r["value"] for r in reversed(rows) if r["metric"] == metric), None
            )
    pending: list[Row] = []
    last_eval_time, last_eval_step = time.perf_counter(), step
    save_at_episode_end = False

    def emit(metric: str, value: float, at: int) -> None:
        _check_finite(spec.label, metric, value)
        for prev in reversed(rows):  # rows are in step order: only the tail can share ``at``
            if prev["env_step"] != at:
                break
            if prev["metric"] == metric:
                raise DuplicateMetric(
                    f"{spec.label}: metric {metric!r} emitted twice at env step {at} "
                    f"({prev['value']!r}, then {float(value)!r}). Return each metric name from "
                    "one hook only (update, on_episode_end or eval_metrics), or rename one copy: "
                    "see benchmark/driver.py's docstring"
                )
        row = {
            "env_step": at,
            "wallclock_s": time.perf_counter() - t0,
            "metric": metric,
            "value": float(value),
        }
        rows.append(row)
        pending.append(row)

    def do_eval() -> None:
        nonlocal last_eval_time, last_eval_step
        if eval_seeds:
            ev = evaluate(algo, eval_env, task, eval_seeds)
            mean = ev.mean
            emit("eval_return", ev.mean, step)
            emit("eval_return_std", ev.std, step)
            emit("eval_length", ev.length, step)
            if not math.isnan(ev.value_pred):
                emit("value_pred", ev.value_pred, step)
                emit("value_return", ev.value_return, step)
                emit("value_bias", ev.value_pred - ev.value_return, step)
        else:
            mean = math.nan
        if progress is not None:
            progress.update(step=step, eval_return=None if math.isnan(mean) else mean)
        now = time.perf_counter()
        if step > last_eval_step:
            emit("steps_per_s", (step - last_eval_step) / max(now - last_eval_time, 1e-9), step)
        for k in sorted(sums):
            emit(k, sums[k] / counts[k], step)
        sums.clear()
        counts.clear()
        for k, v in algo.eval_metrics().items():
            emit(k, v, step)
        if report is not None:
            report(list(pending), rows)
        pending.clear()
        last_eval_time, last_eval_step = time.perf_counter(), step

    def save() -> None:
        nonlocal last_save
        assert ckpt_path is not None
        state = {
            "algo": algo.state_dict(),
            **ctx.generator_state(),  # the one owner of the trial's generator state
            "torch_global": torch.get_rng_state(),
            "rows": rows,
            "step": step,
            "episode": episode,
            "next_eval": next_eval,
            "sums": sums,
            "counts": counts,
            "elapsed": time.perf_counter() - t0,
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        where = {
            "step": step,
            "episode": episode,
            "next_eval": next_eval,
            "elapsed": state["elapsed"],
        }
        ckpt_path.with_suffix(".json.tmp").write_text(json.dumps(where))
        os.replace(ckpt_path.with_suffix(".json.tmp"), ckpt_path.with_suffix(".json"))
        last_save = time.perf_counter()

    try:
        while step < spec.total_steps:
            obs, info = env.reset(seed=_episode_seed(spec.seed, 0, episode))
            algo.reset(explore=True)
            ep_return, ep_len, done = 0.0, 0, False
            while not done and step < spec.total_steps:
                if step >= next_eval:
                    do_eval()
                    next_eval += spec.eval_every
                    save_at_episode_end = ckpt_path is not None
                action, record = _env_action(task, algo.act(obs, explore=True, info=info))
                _check_finite(spec.label, "action", record)
                sim_state = info.get("sim_state")
                next_obs, reward, terminated, truncated, info = env.step(action)
                _check_finite(spec.label, "observation", next_obs)
                transition = Transition(
                    obs, record, float(reward), next_obs, bool(terminated), bool(truncated),
                    sim_state, info.get("sim_state"),
                )  # fmt: skip
                algo.observe(transition)
                step += 1
                for k, v in algo.update().items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
                ep_return += float(reward)
                ep_len += 1
                obs = next_obs
                done = terminated or truncated
                if progress is not None:
                    progress["step"] = step
            episode += 1
            emit("train_return", ep_return, step)
            emit("train_length", ep_len, step)
            for k, v in algo.on_episode_end().items():
                emit(k, v, step)
            if progress is not None:
                progress["train_return"] = ep_return
            due = time.perf_counter() - last_save >= checkpoint_every_s
            if (save_at_episode_end or (due and ckpt_path is not None)) and step < spec.total_steps:
                save()
                save_at_episode_end = False
        do_eval()
    finally:
        env.close()
        eval_env.close()
    if trial_dir is not None:
        save_agent(Path(trial_dir) / AGENT_FILE, algo, spec, step)
    if ckpt_path is not None:
        ckpt_path.unlink(missing_ok=True)
        ckpt_path.with_suffix(".json").unlink(missing_ok=True)
    return rows


#: The agent a finished trial leaves in its folder (:func:`save_agent`, :func:`load_agent`).
AGENT_FILE = "agent.pt"


def save_agent(path: Path, algo: Algorithm, spec: TrialSpec, step: int) -> None:
    """Write the agent's whole state (``algo.state_dict()``: networks, optimizers, replay) with
    the trial's spec and env step, atomically."""
    state = {"format": 1, "spec": asdict(spec), "step": step, "algo": algo.state_dict()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _set_threads(spec: TrialSpec) -> None:
    """torch's intra-op threads for a trial's process (``spec.threads``; None leaves the default)."""
    if spec.threads:
        torch.set_num_threads(spec.threads)


def load_agent(
    trial_dir: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    checkpoint: bool = False,
) -> tuple[Algorithm, TaskSpec, TrialSpec, int]:
    """The agent a finished trial saved, rebuilt from its spec: ``(algo, task, spec, step)``.

    ``overrides`` are added to the trial's own (settings that leave the networks' shapes alone,
    such as ``eval_root_noise``); ``device`` replaces the spec's. ``checkpoint``: the agent of
    an unfinished trial's last checkpoint instead (``checkpoint.pt``, its spec from
    ``spec.json``), read only. Sets torch's threads to the trial's ``threads``, as
    :func:`run_trial` does. Raises ``FileNotFoundError`` naming the fix when the folder holds
    no saved agent, ``ConfigError`` on bad overrides."""
    spec_dict: dict[str, Any] | None = None
    if checkpoint:
        path, spec_path = Path(trial_dir) / "checkpoint.pt", Path(trial_dir) / "spec.json"
        for need in (path, spec_path):
            if not need.exists():
                raise FileNotFoundError(
                    f"{need} does not exist: give the folder of a trial that is still running "
                    f"or was stopped (finished trials keep {AGENT_FILE}: drop checkpoint=True)"
                )
        spec_dict = json.loads(spec_path.read_text())
    else:
        path = Path(trial_dir) / AGENT_FILE
        if not path.exists():
            running = (Path(trial_dir) / "checkpoint.pt").exists()
            why = (
                "the trial has not finished (it saves its agent when it does; RESUME= its run)"
                if running
                else "a trial saves its agent when it finishes (trials that finished before the "
                "suite did so have none); rerun the trial to get one"
            )
            raise FileNotFoundError(f"{path} does not exist: {why}")
    state = torch.load(path, weights_only=False, map_location="cpu")
    saved = dict(spec_dict if spec_dict is not None else state["spec"])
    saved["overrides"] = {**saved.get("overrides", {}), **dict(overrides or {})}
    if device is not None:
        saved["device"] = device
    spec = TrialSpec(**saved)
    cls, task, config = resolve(spec)
    _set_threads(spec)  # as the trial ran (torch's default oversubscribes a shared core)
    dev = _device(spec.device)
    if dev.type != "cpu":
        state = torch.load(path, weights_only=False, map_location=dev)
    ctx = RunContext.from_seed(spec.seed, device=dev, total_steps=spec.total_steps)
    algo = cls(task, config, ctx)
    try:
        algo.load_state_dict(state["algo"])
    except (RuntimeError, KeyError, ValueError) as e:
        if not overrides:
            raise
        raise ConfigError(
            f"{path}: the saved agent does not fit the added settings {dict(overrides)} "
            f"({type(e).__name__}); add only settings that leave the networks' shapes alone"
        ) from e
    return algo, task, spec, int(state["step"])


def eval_curve(rows: Iterable[Row], metric: str = "eval_return") -> list[tuple[int, float]]:
    """``[(env_step, value)]`` of one metric, in order."""
    return [(r["env_step"], r["value"]) for r in rows if r["metric"] == metric]


def final_eval_return(rows: Iterable[Row]) -> float:
    """The last evaluation's mean return (NaN when there was none)."""
    curve = eval_curve(rows)
    return curve[-1][1] if curve else math.nan
