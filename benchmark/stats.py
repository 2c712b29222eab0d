"""Statistics over seeds: pure functions over tidy curves and ``runs x tasks`` score matrices.

Interval estimates use rliable's stratified bootstrap (Agarwal et al. 2021) with a seeded,
local random state; the point estimates are the mean and the interquartile mean (IQM).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics as rlm

SUMMARY_COLUMNS = ["env", "algo", "seeds", "final_step", "mean", "std", "iqm", "ci_low", "ci_high"]


def final_scores(curves: pd.DataFrame, metric: str = "eval_return") -> pd.DataFrame:
    """The last value of ``metric`` per (algo, env, seed): columns ``algo, env, seed, env_step, value``."""
    df = curves[curves["metric"] == metric].sort_values("env_step")
    return df.groupby(["algo", "env", "seed"], as_index=False).last()[
        ["algo", "env", "seed", "env_step", "value"]
    ]


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of a ``runs x tasks`` matrix (all entries pooled, as rliable does)."""
    return float(rlm.aggregate_iqm(np.asarray(scores, dtype=np.float64)))


def bootstrap_ci(
    scores: np.ndarray, *, stat: str = "mean", reps: int = 2000, seed: int = 0, size: float = 0.95
) -> tuple[float, float]:
    """Stratified-bootstrap CI of ``stat`` (``mean`` or ``iqm``) over the runs of each task."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.shape[0] < 2:
        v = float(np.mean(scores))
        return v, v
    func = rlm.aggregate_mean if stat == "mean" else rlm.aggregate_iqm
    _, ci = rly.get_interval_estimates(
        {"x": scores},
        lambda x: np.array([func(x)]),
        reps=reps,
        confidence_interval_size=size,
        random_state=np.random.RandomState(seed),
    )
    low, high = ci["x"][:, 0]
    return float(low), float(high)


def summary(curves: pd.DataFrame, metric: str = "eval_return", *, seed: int = 0) -> pd.DataFrame:
    """Final ``metric`` per (env, algo): seeds, mean, std, IQM and a 95% bootstrap CI of the mean."""
    rows = []
    for (env, algo), g in final_scores(curves, metric).groupby(["env", "algo"]):
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
                "iqm": iqm(v[:, None]),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
