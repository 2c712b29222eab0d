"""Statistics on hand-computed fixtures, and the summary table over tidy curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark import stats
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


#: 4 runs x 3 tasks: task means 3, 1.5, 1; pooled sorted 0 0 1 1 1 1 1 1 1 2 4 9
M = np.array([[0, 4, 1], [1, 0, 1], [2, 1, 1], [9, 1, 1]], dtype=float)


def test_aggregates_match_hand_computation():
    assert stats.aggregate_mean(M) == 5.5 / 3  # mean of the task means
    assert stats.aggregate_median(M) == 1.5  # median of the task means
    assert stats.aggregate_iqm(M) == 1.0  # int(0.25 * 12) = 3 cut each side: six 1s
    assert np.isclose(stats.optimality_gap(M), 1 - 10 / 12)  # min(x, 1) sums to 10
    assert np.isclose(stats.optimality_gap(M, gamma=2.0), 2 - 13 / 12)
    assert stats.score_distribution(M, np.array([0.5, 1.0, 3.0])).tolist() == [
        10 / 12,
        3 / 12,
        2 / 12,
    ]


def test_probability_of_improvement_counts_pairs_and_half_ties():
    x, y = np.array([[1.0], [3.0]]), np.array([[2.0], [2.0], [3.0]])
    assert np.isclose(stats.probability_of_improvement(x, y), 2.5 / 6)  # 3 > 2, 2; 3 = 3
    assert np.isclose(stats.probability_of_improvement(y, x), 3.5 / 6)
    assert stats.probability_of_improvement(M, M) == 0.5  # rliable's identical-runs case
    two = np.hstack([x, x + 10])  # the second task: X always ahead of Y
    y2 = np.hstack([y, y])
    assert np.isclose(stats.probability_of_improvement(two, y2), (2.5 / 6 + 1.0) / 2)


def test_missing_runs_are_left_out():
    """A task with fewer runs is NaN-padded: pooled statistics use its runs, per-task means
    its own mean, and resamples redraw only its runs and keep the padding."""
    m = np.array([[0.0, 1.0], [2.0, 5.0], [4.0, np.nan]])
    assert stats.aggregate_mean(m) == 2.5  # task means 2 and 3
    assert np.isclose(stats.aggregate_iqm(m), 7 / 3)  # 0 1 2 4 5: one cut each side
    assert np.isclose(stats.optimality_gap(m), 1 - 4 / 5)  # min(x, 1): 0 1 1 1 1
    r = stats.stratified_resample(m, 200, np.random.default_rng(0))
    assert r.shape == (200, 3, 2) and np.isnan(r[:, 2, 1]).all()
    assert set(np.unique(r[:, :2, 1])) == {1.0, 5.0} and set(np.unique(r[:, :, 0])) == {
        0.0,
        2.0,
        4.0,
    }
    assert np.isclose(
        stats.probability_of_improvement(m, m + 1),
        (3 / 9 + 1 / 4) / 2,  # task 0: 2 > 1, 4 > 1, 4 > 3 of 9 pairs; task 1: 5 > 2 of 4
    )


def test_aggregates_equal_rliable_point_estimates():
    """The same matrices through rliable 1.2.0 (``metrics.py``, ``library.py``): equal to the
    last bits of float rounding (IQM: rliable's ``trim_mean`` partitions, ours sorts)."""
    from rliable import library, metrics

    for k, shape in enumerate([(5, 3), (10, 1), (3, 8), (7, 4)]):
        rng = np.random.default_rng(k)
        x = rng.normal(0.5, 0.4, shape).round(2)  # rounding makes ties
        y = rng.normal(0.4, 0.4, (shape[0] + 1, shape[1])).round(2)
        pairs = [
            (stats.aggregate_iqm(x), metrics.aggregate_iqm(x)),
            (stats.aggregate_mean(x), metrics.aggregate_mean(x)),
            (stats.aggregate_median(x), metrics.aggregate_median(x)),
            (stats.optimality_gap(x), metrics.aggregate_optimality_gap(x)),
            (stats.probability_of_improvement(x, y), metrics.probability_of_improvement(x, y)),
            (stats.probability_of_improvement(y, x), metrics.probability_of_improvement(y, x)),
        ]
        for ours, theirs in pairs:
            assert np.isclose(ours, theirs, rtol=1e-12, atol=1e-15), (k, ours, theirs)
        taus = np.linspace(-0.5, 1.5, 9)
        profile, _ = library.create_performance_profile({"x": x}, taus, reps=5)
        assert np.array_equal(stats.score_distribution(x, taus), profile["x"])


def test_interval_estimates_are_reproducible_and_bracket_the_point():
    rng = np.random.default_rng(1)
    scores = {"a": rng.normal(0.6, 0.2, (5, 4)), "b": rng.normal(0.3, 0.2, (5, 4))}
    first = stats.interval_estimates(scores, reps=3000, seed=7)
    again = stats.interval_estimates(scores, reps=3000, seed=7)
    pd.testing.assert_frame_equal(first, again)  # bit for bit
    other = stats.interval_estimates(scores, reps=3000, seed=8)
    assert not first[["ci_low", "ci_high"]].equals(other[["ci_low", "ci_high"]])
    assert (first["ci_low"] <= first["value"]).all() and (first["value"] <= first["ci_high"]).all()
    assert set(first["metric"]) == set(stats.AGGREGATES) and first["runs"].eq(20).all()
    # one algorithm's intervals do not depend on which others are estimated beside it
    alone = stats.interval_estimates({"b": scores["b"]}, reps=3000, seed=7)
    assert alone["ci_low"].tolist() != [] and len(alone) == 4
    poi = stats.improvement_matrix(scores, reps=1000, seed=0)
    ab = poi[(poi.x == "a") & (poi.y == "b")].iloc[0]
    ba = poi[(poi.x == "b") & (poi.y == "a")].iloc[0]
    assert np.isclose(ab.value + ba.value, 1.0) and ab.ci_low <= ab.value <= ab.ci_high
    pd.testing.assert_frame_equal(poi, stats.improvement_matrix(scores, reps=1000, seed=0))
    prof = stats.performance_profiles(scores, np.linspace(0, 1, 5), reps=500, seed=0)
    assert len(prof) == 10 and (prof.ci_low <= prof.value + 1e-12).all()
