"""Figures rendered from stored curves: the model-trust figure (value bias, STEVE's weights)."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.plots import horizon_weights, render


def _curves() -> pd.DataFrame:
    """Two seeds of ``sac`` (value bias only) and ``steve`` (value bias and horizon weights
    that move from horizon 0 towards the model)."""
    rows = []
    for seed in (0, 1):
        for step in (1000, 2000, 3000):
            for algo in ("sac", "steve"):
                rows.append((algo, seed, step, "eval_return", float(step)))
                rows.append((algo, seed, step, "value_bias", 5.0 - step / 1000 + seed))
            w0 = 0.7 - step / 10_000 + 0.02 * seed
            for h, w in enumerate((w0, (1 - w0) / 2, (1 - w0) / 2)):
                rows.append(("steve", seed, step, f"steve_w_h{h}", w))
    df = pd.DataFrame(rows, columns=["algo", "seed", "env_step", "metric", "value"])
    return df.assign(run_id="r", env="pendulum", wallclock_s=0.0)


def test_horizon_weights_average_the_seeds_per_horizon():
    w = horizon_weights(_curves())
    assert set(w["algo"]) == {"steve"} and sorted(w["horizon"].unique()) == [0, 1, 2]
    at = w[w["env_step"] == 2000].set_index("horizon")["value"]
    assert at[0] == pytest.approx(0.51) and at[1] == pytest.approx(0.245)
    assert at.sum() == pytest.approx(1.0)
    assert horizon_weights(_curves().query("algo == 'sac'")).empty


def test_render_draws_the_model_trust_figure_only_where_it_has_data(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _curves().to_csv(run / "curves.csv", index=False)
    files = render(run)
    assert run / "plots" / "pendulum_model_trust.png" in files
    assert (run / "plots" / "pendulum_model_trust.png").stat().st_size > 0
    bare = tmp_path / "bare"
    bare.mkdir()
    c = _curves()
    c[c["metric"] == "eval_return"].to_csv(bare / "curves.csv", index=False)
    assert not any("model_trust" in f.name for f in render(bare))
