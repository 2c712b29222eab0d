"""Statistics on hand-computed fixtures, and the summary table over tidy curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.stats import bootstrap_ci, final_scores, iqm, summary, window_scores


def test_iqm_matches_hand_computation():
    # rliable's own fixture: IQM of this 4 x 2 matrix is 1.5 (the middle half of 0..3 twice)
    scores = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=float)
    assert iqm(scores) == 1.5
    assert iqm(np.arange(8.0)[:, None]) == 3.5


def test_iqm_trims_a_quarter_on_each_side():
    x = np.array([100.0, 1, 2, 3, 4, 5, 6, -100])
    assert iqm(x) == 3.5  # the extremes are dropped


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 1.0, size=30)
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo < x.mean() < hi and hi - lo < 1.5
    assert (lo, hi) == bootstrap_ci(x, seed=1)


def test_summary_uses_the_last_evaluation_of_each_seed():
    rows = []
    for seed, final in enumerate([1.0, 2.0, 3.0]):
        for step, value in [(0, -5.0), (100, final)]:
            rows.append(("r", "a", "t", seed, step, 0.0, "eval_return", value))
            rows.append(("r", "a", "t", seed, step, 0.0, "train_return", 99.0))
    curves = pd.DataFrame(
        rows,
        columns=["run_id", "algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"],
    )
    assert final_scores(curves)["value"].tolist() == [1.0, 2.0, 3.0]
    table = summary(curves)
    row = table.iloc[0]
    assert (row["env"], row["algo"], row["seeds"], row["final_step"]) == ("t", "a", 3, 100)
    assert row["mean"] == 2.0 and row["std"] == 1.0
    assert row["ci_low"] <= 2.0 <= row["ci_high"]


def test_window_scores_average_each_seed_over_the_window():
    rows = []
    for seed, step_max in ((0, 300), (1, 300), (2, 200)):  # seed 2 stops before the window ends
        for step in range(0, step_max + 1, 100):
            rows.append(("r", "a", "t", seed, step, 0.0, "eval_return", float(step + seed)))
    curves = pd.DataFrame(
        rows,
        columns=["run_id", "algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"],
    )
    w = window_scores(curves, 100, 300)
    assert w["seed"].tolist() == [0, 1] and w["value"].tolist() == [250.0, 251.0]
    assert w["env_step"].tolist() == [300, 300]
    row = summary(curves, window=(100, 300)).iloc[0]
    assert row["seeds"] == 2 and row["mean"] == 250.5
