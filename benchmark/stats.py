"""Statistics over seeds and tasks: pure functions over tidy curves and ``runs x tasks`` score
matrices (rliable, Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice").

Per task: the mean and the interquartile mean (IQM) of the seeds' final returns. Across tasks
(normalised scores, ``[runs, tasks]``, NaN where a task has fewer runs): IQM, mean, median,
optimality gap, probability of improvement and performance profiles, with rliable's definitions
(``metrics.py``; ``tests/test_stats.py`` checks the point estimates against rliable 1.2.0 on the
same matrices). Intervals come from a stratified percentile bootstrap over runs (each task's runs
redrawn within the task; 50,000 resamples for aggregates, 2,000 for profiles and probability of
improvement, rliable's defaults). It is written here rather than called from rliable because
rliable 1.2.0 draws its resamples from the global ``np.random`` (``StratifiedBootstrap.
update_indices`` ignores its ``random_state``), so its "seeded" intervals are not reproducible;
ours take a local ``np.random.Generator`` and are vectorised over resamples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ["env", "algo", "seeds", "final_step", "mean", "std", "iqm", "ci_low", "ci_high"]


def final_scores(curves: pd.DataFrame, metric: str = "eval_return") -> pd.DataFrame:
    """The last value of ``metric`` per (algo, env, seed): columns ``algo, env, seed, env_step, value``."""
    df = curves[curves["metric"] == metric].sort_values("env_step")
    return df.groupby(["algo", "env", "seed"], as_index=False).last()[
        ["algo", "env", "seed", "env_step", "value"]
    ]


def window_scores(
    curves: pd.DataFrame, low: int, high: int, metric: str = "eval_return"
) -> pd.DataFrame:
    """The mean of ``metric`` over the evaluations at env steps in ``(low, high]`` per (algo,
    env, seed), e.g. "the mean return over the last 10k of 30k steps": ``(20000, 30000]``. Trials
    whose evaluations stop before ``high`` are left out (a partial window is no score).
    Columns ``algo, env, seed, env_step`` (the window's last evaluation) ``, value``."""
    df = curves[curves["metric"] == metric]
    reached = df.groupby(["algo", "env", "seed"])["env_step"].transform("max") >= high
    df = df[reached & (df["env_step"] > low) & (df["env_step"] <= high)]
    return df.groupby(["algo", "env", "seed"], as_index=False).agg(
        env_step=("env_step", "max"), value=("value", "mean")
    )


def _matrix(scores: np.ndarray) -> np.ndarray:
    """``scores`` as float64 ``[..., runs, tasks]`` (a 1-D array is one task's runs)."""
    a = np.asarray(scores, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _trimmed_iqm(scores: np.ndarray) -> np.ndarray:
    """IQM over the last two axes of ``[..., runs, tasks]``, NaN entries (missing runs) left out:
    ``scipy.stats.trim_mean(x, 0.25)`` of the pooled finite entries of each leading index."""
    a = _matrix(scores)
    flat = np.sort(a.reshape(*a.shape[:-2], -1), axis=-1)  # NaN sorts last
    n = np.count_nonzero(~np.isnan(flat), axis=-1)
    cut = (0.25 * n).astype(np.int64)  # scipy's lowercut: int(proportiontocut * nobs)
    j = np.arange(flat.shape[-1])
    keep = (j >= cut[..., None]) & (j < (n - cut)[..., None])
    return np.where(keep, flat, 0.0).sum(axis=-1) / np.maximum(n - 2 * cut, 1)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of a ``runs x tasks`` matrix, all entries pooled (rliable's
    ``aggregate_iqm``); NaN entries (a task with fewer runs) are left out."""
    return float(_trimmed_iqm(scores))


def mean(scores: np.ndarray) -> float:
    return float(np.mean(scores))


# --- aggregates over a [..., runs, tasks] score matrix (rliable ``metrics.py``; NaN = no run) ---


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
    """25%-trimmed mean of all runs of all tasks pooled (rliable ``aggregate_iqm``)."""
    return _trimmed_iqm(scores)


def aggregate_mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of each task's mean over runs (rliable ``aggregate_mean``)."""
    return np.mean(np.nanmean(_matrix(scores), axis=-2), axis=-1)


def aggregate_median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of each task's mean over runs (rliable ``aggregate_median``)."""
    return np.median(np.nanmean(_matrix(scores), axis=-2), axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``gamma - mean(min(score, gamma))`` over all runs and tasks (rliable
    ``aggregate_optimality_gap``, gamma 1: the distance below the reference; lower is better)."""
    a = _matrix(scores)
    return gamma - np.nanmean(np.minimum(a, gamma).reshape(*a.shape[:-2], -1), axis=-1)


#: The aggregate figure's metrics, in rliable's order: name -> ``[..., runs, tasks] -> [...]``.
AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Median": aggregate_median,
    "IQM": aggregate_iqm,
    "Mean": aggregate_mean,
    "Optimality gap": optimality_gap,
}


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y)`` averaged over tasks (rliable ``probability_of_improvement``): per task the
    Mann-Whitney ``U / (n_x n_y)``, the share of run pairs where X scores higher, ties counting
    a half. ``x [..., runs_x, tasks]``, ``y [..., runs_y, tasks]`` on the same tasks -> ``[...]``."""
    a, b = _matrix(x)[..., :, None, :], _matrix(y)[..., None, :, :]
    valid = ~np.isnan(a) & ~np.isnan(b)
    wins = np.where(valid, (a > b) + 0.5 * (a == b), 0.0).sum(axis=(-3, -2))
    return np.mean(wins / valid.sum(axis=(-3, -2)), axis=-1)


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Performance profile (rliable ``run_score_distribution``): the fraction of runs, of all
    tasks pooled, whose score exceeds each ``tau``. ``[..., runs, tasks]`` -> ``[..., taus]``."""
    a = _matrix(scores)
    flat = a.reshape(*a.shape[:-2], -1)[..., None]  # [..., runs * tasks, 1]
    above = np.where(np.isnan(flat), 0.0, flat > np.asarray(taus, dtype=np.float64))
    return above.sum(axis=-2) / np.count_nonzero(~np.isnan(flat), axis=-2)


def stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, runs, tasks]`` resamples of ``scores [runs, tasks]`` that redraw each task's runs
    with replacement among that task's own (non-NaN, stored first) runs: rliable's stratified
    bootstrap (``StratifiedBootstrap``), with a local generator so that a seed gives the same
    draws everywhere. A task with fewer runs keeps its NaN padding in every resample."""
    a = _matrix(scores)
    runs, tasks = a.shape
    n = np.count_nonzero(~np.isnan(a), axis=0)  # [tasks]
    if (n == runs).all():
        idx = rng.integers(0, runs, size=(reps, runs, tasks))
    else:
        idx = rng.integers(0, np.maximum(n, 1), size=(reps, runs, tasks))
        idx = np.where(
            np.arange(runs)[None, :, None] < n[None, None, :], idx, np.arange(runs)[None, :, None]
        )
    return a[idx, np.arange(tasks)[None, None, :]]


def stratified_bootstrap(
    scores: np.ndarray, stat: Callable[[np.ndarray], float], reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``[reps]`` values of ``stat`` on resamples that redraw the runs of each task independently.

    ``scores``: ``[runs, tasks]``.
    """
    return np.array([stat(r) for r in stratified_resample(scores, reps, rng)])


def _percentile_ci(boot: np.ndarray, size: float) -> np.ndarray:
    """``[2, ...]`` lower and upper percentile bounds of ``boot [reps, ...]``."""
    tail = 100 * (1 - size) / 2
    return np.percentile(boot, [tail, 100 - tail], axis=0)


def _chunks(reps: int, per_rep: int, budget: int = 20_000_000) -> list[int]:
    """Resample counts per chunk so that one chunk holds at most ``budget`` entries."""
    step = max(1, budget // max(per_rep, 1))
    return [min(step, reps - i) for i in range(0, reps, step)]


def interval_estimates(
    scores: dict[str, np.ndarray],
    funcs: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    *,
    reps: int = 50_000,
    seed: int = 0,
    size: float = 0.95,
) -> pd.DataFrame:
    """Point estimates and stratified-bootstrap percentile CIs of each aggregate (rliable
    ``get_interval_estimates``: 50,000 resamples, 95%) per algorithm.

    ``scores``: algorithm -> ``[runs, tasks]`` (NaN: no run). Each algorithm's resamples come
    from its own generator, seeded by ``seed`` and its position, so adding an algorithm does not
    change the others' intervals. Columns ``algo, metric, value, ci_low, ci_high, runs, tasks``.
    """
    funcs = AGGREGATES if funcs is None else funcs
    rows = []
    for k, (algo, m) in enumerate(scores.items()):
        m = _matrix(m)
        rng = np.random.default_rng([seed, k])
        boots: dict[str, list[np.ndarray]] = {name: [] for name in funcs}
        for r in _chunks(reps, m.size):
            sample = stratified_resample(m, r, rng)
            for name, f in funcs.items():
                boots[name].append(f(sample))
        for name, f in funcs.items():
            low, high = _percentile_ci(np.concatenate(boots[name]), size)
            rows.append(
                {"algo": algo, "metric": name, "value": float(f(m)), "ci_low": float(low),
                 "ci_high": float(high), "runs": int(np.count_nonzero(~np.isnan(m))),
                 "tasks": m.shape[1]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def improvement_interval(
    x: np.ndarray, y: np.ndarray, *, reps: int, rng: np.random.Generator, size: float = 0.95
) -> tuple[float, float, float]:
    """``P(X > Y)`` and its stratified-bootstrap CI, X's and Y's runs redrawn independently
    (as rliable): ``(value, low, high)``. ``x [runs_x, tasks]``, ``y [runs_y, tasks]``."""
    a, b = _matrix(x), _matrix(y)
    boot = [
        probability_of_improvement(stratified_resample(a, r, rng), stratified_resample(b, r, rng))
        for r in _chunks(reps, a.shape[0] * b.shape[0] * a.shape[1])
    ]
    low, high = _percentile_ci(np.concatenate(boot), size)
    return float(probability_of_improvement(a, b)), float(low), float(high)


def improvement_matrix(
    scores: dict[str, np.ndarray], *, reps: int = 2000, seed: int = 0, size: float = 0.95
) -> pd.DataFrame:
    """Probability of improvement of every ordered pair ``(x, y)`` of algorithms with its CI
    (:func:`improvement_interval`). ``scores``: algorithm -> ``[runs, tasks]`` on the same
    tasks. Columns ``x, y, value, ci_low, ci_high``."""
    rows = []
    names = list(scores)
    for i, x in enumerate(names):
        for j, y in enumerate(names):
            if i == j:
                continue
            rng = np.random.default_rng([seed, i, j])
            v, lo, hi = improvement_interval(scores[x], scores[y], reps=reps, rng=rng, size=size)
            rows.append({"x": x, "y": y, "value": v, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["x", "y", "value", "ci_low", "ci_high"])


def performance_profiles(
    scores: dict[str, np.ndarray],
    taus: np.ndarray,
    *,
    reps: int = 2000,
    seed: int = 0,
    size: float = 0.95,
) -> pd.DataFrame:
    """Each algorithm's score distribution over ``taus`` with its stratified-bootstrap band
    (rliable ``create_performance_profile``: 2,000 resamples). Columns ``algo, tau, value,
    ci_low, ci_high``."""
    rows = []
    for k, (algo, m) in enumerate(scores.items()):
        m = _matrix(m)
        rng = np.random.default_rng([seed, k])
        boot = np.concatenate(
            [
                score_distribution(stratified_resample(m, r, rng), taus)
                for r in _chunks(reps, m.size * len(taus))
            ]
        )
        low, high = _percentile_ci(boot, size)
        for t, v, lo, hi in zip(taus, score_distribution(m, taus), low, high, strict=True):
            rows.append({"algo": algo, "tau": float(t), "value": float(v),
                         "ci_low": float(lo), "ci_high": float(hi)})  # fmt: skip
    return pd.DataFrame(rows, columns=["algo", "tau", "value", "ci_low", "ci_high"])


def bootstrap_ci(
    scores: np.ndarray, *, stat: str = "mean", reps: int = 2000, seed: int = 0, size: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of ``stat`` (``mean`` or ``iqm``) under the stratified bootstrap."""
    scores = _matrix(scores)
    func = mean if stat == "mean" else iqm
    if scores.shape[0] < 2:
        v = func(scores)
        return v, v
    boot = stratified_bootstrap(scores, func, reps, np.random.default_rng(seed))
    low, high = _percentile_ci(boot, size)
    return float(low), float(high)


def summary(
    curves: pd.DataFrame,
    metric: str = "eval_return",
    *,
    seed: int = 0,
    window: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Final ``metric`` per (env, algo): seeds, mean, std, IQM and a 95% bootstrap CI of the mean.
    With ``window=(low, high)`` a seed's score is its mean over the evaluations in ``(low, high]``
    (:func:`window_scores`) instead of its last evaluation."""
    rows = []
    scores = (
        final_scores(curves, metric) if window is None else window_scores(curves, *window, metric)
    )
    for (env, algo), g in scores.groupby(["env", "algo"]):
        v = g["value"].to_numpy()
        low, high = bootstrap_ci(v, seed=seed)
        rows.append(
            {
                "env": env,
                "algo": algo,
                "seeds": len(v),
                "final_step": int(g["env_step"].max()),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                "iqm": iqm(v),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
