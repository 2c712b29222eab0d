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


# --- layout: what issue 18 asked of the figures, checked on small axes -------------------------


def _eval_curves(budgets: dict[str, int]) -> pd.DataFrame:
    rows = [
        (algo, 0, step, "eval_return", 1.0)
        for algo, budget in budgets.items()
        for step in (0, budget // 2, budget)
    ]
    return pd.DataFrame(rows, columns=["algo", "seed", "env_step", "metric", "value"])


def test_horizon_panels_sort_naturally():
    from benchmark.plots import natural_key

    names = ["model_err_h25", "model_err_h10", "model_err_h1", "model_err_h5"]
    assert sorted(names, key=natural_key) == [
        "model_err_h1", "model_err_h5", "model_err_h10", "model_err_h25"
    ]  # fmt: skip


def test_axes_go_log_or_symlog_only_where_values_span_decades():
    import matplotlib.pyplot as plt

    from benchmark.plots import _log_if_wide, _short_budgets_readable

    fig, axes = plt.subplots(1, 5)
    _log_if_wide(axes[0], pd.Series([1.0, 50.0, 1e4]))  # steps_per_s of random vs the rest
    _log_if_wide(axes[1], pd.Series([1.0, 50.0]))
    _log_if_wide(axes[2], pd.Series([0.0, 1.0, 1e4]))  # a zero: no log axis
    _short_budgets_readable(axes[3], _eval_curves({"cem": 200, "mbpo": 15000}))
    _short_budgets_readable(axes[4], _eval_curves({"sac": 5000, "ddpg": 8000}))
    assert [ax.get_yscale() for ax in axes[:3]] == ["log", "linear", "linear"]
    assert [ax.get_xscale() for ax in axes[3:]] == ["symlog", "linear"]
    plt.close(fig)


def test_the_legend_sits_below_every_panel_and_pdfs_are_byte_stable(tmp_path):
    import matplotlib.pyplot as plt

    from benchmark.plots import _legend_below, _save, algo_palette

    algos = [f"algo{i}" for i in range(14)]  # three legend rows
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    palette = algo_palette(algos)
    for ax in axes.flat:
        for k, a in enumerate(algos):
            ax.plot([0, 1], [k, k + 1], color=palette[a])
    _legend_below(fig, palette, algos)
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    lowest_panel = min(ax.get_tightbbox().y0 for ax in axes.flat)  # tick labels included
    assert legend.y1 <= lowest_panel, (legend, lowest_panel)
    assert len(fig.legends[0].get_texts()) == 14
    first = _save(fig, tmp_path / "a.png", tight=False)
    fig2, ax2 = plt.subplots()
    ax2.plot([0, 1], [0, 1])
    _save(fig2, tmp_path / "b.png")
    fig3, ax3 = plt.subplots()
    ax3.plot([0, 1], [0, 1])
    _save(fig3, tmp_path / "c.png")
    assert first.with_suffix(".pdf").exists()
    assert (tmp_path / "b.pdf").read_bytes() == (tmp_path / "c.pdf").read_bytes()
