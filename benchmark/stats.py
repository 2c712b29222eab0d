"""Statistics over seeds: pure functions over tidy curves and ``runs x tasks`` score matrices.

Point estimates are the mean and the interquartile mean (IQM); intervals come from a stratified
percentile bootstrap over runs, as in rliable (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"). It is written here rather than called from rliable because rliable 1.2.0
draws its resamples from the global ``np.random`` (``StratifiedBootstrap.update_indices``), so its
"seeded" intervals are not reproducible; ours take a local ``np.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import trim_mean

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


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of a ``runs x tasks`` matrix, all entries pooled (rliable's definition)."""
    return float(trim_mean(np.asarray(scores, dtype=np.float64).reshape(-1), 0.25))


def mean(scores: np.ndarray) -> float:
    return float(np.mean(scores))


def stratified_bootstrap(
    scores: np.ndarray, stat: Callable[[np.ndarray], float], reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``[reps]`` values of ``stat`` on resamples that redraw the runs of each task independently.

    ``scores``: ``[runs, tasks]``.
    """
    runs, tasks = scores.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    resampled = scores[idx, np.arange(tasks)[None, None, :]]  # [reps, runs, tasks]
    return np.array([stat(r) for r in resampled])


def bootstrap_ci(
    scores: np.ndarray, *, stat: str = "mean", reps: int = 2000, seed: int = 0, size: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of ``stat`` (``mean`` or ``iqm``) under the stratified bootstrap."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    func = mean if stat == "mean" else iqm
    if scores.shape[0] < 2:
        v = func(scores)
        return v, v
    boot = stratified_bootstrap(scores, func, reps, np.random.default_rng(seed))
    tail = 100 * (1 - size) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
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
