"""Figures and tables from stored curves only (no Ray): ``python -m benchmark plots RUN``.

Writes into ``results/<run>/``:

- ``plots/<task>.png``: mean eval return per algorithm against env steps, with a 95% bootstrap
  confidence band across seeds;
- ``plots/all_tasks.png``: every task in one grid;
- ``plots/<task>_diagnostics.png``: every other logged metric (model error, rollout horizon,
  losses) as small multiples, so compounding model error is visible next to the returns;
- ``plots/<task>_model_error.png``: the compounding-error curve, held-out ``k``-step model error
  (``model_err_h{k}``) against ``k``, for every algorithm that logs it;
- ``plots/<task>_value_equivalence.png``: the latent models' probe (``ve_*_err_h{k}``: latent,
  reward and value error against ``k``, open loop on the held-out evaluation episodes);
- ``plots/<task>_model_trust.png``: how far each method's values can be trusted and how far it
  trusts its model: the critic's value bias at the evaluation start states (``value_bias``,
  prediction minus the discounted return obtained; every value-based plugin) and, per algorithm
  that logs them, STEVE's mean weight on each horizon ``steve_w_h{i}`` stacked to 1;
- ``summary.md`` / ``summary.tex``: final return per task and algorithm (mean, IQM, 95% CI).

``python -m benchmark plots a,b`` merges finished runs (e.g. seeds 3-4 run later next to seeds
0-2) into a new folder, ``results/a+b/`` or ``--out NAME`` (never an existing one), with the
concatenated ``curves.csv`` and ``trials.csv``, a ``meta.json`` naming its sources, and the same
figures and tables (:func:`merge_runs`). Runs whose resolved configs (or budgets) differ for the
same algorithm and task are refused unless ``--allow-config-mismatch``; the same (algorithm,
task, seed) in two runs is always refused. ``--variant RUN=NAME`` renames every algorithm of one
run to ``<algo>-NAME`` in the merge, so the same plugin under two configs (the learned model
against ``oracle: true``, bf16 against fp32) becomes two curves side by side instead of a
mismatch.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from benchmark.aggregate import FEW_SEEDS, render_aggregates
from benchmark.collect import check_unique, load_curves
from benchmark.published import SOURCE, published_curves
from benchmark.stats import summary
from benchmark.trial import file_part

EVAL = "eval_return"
NOT_DIAGNOSTIC = {EVAL, "eval_return_std", "eval_length", "train_length"}


def algo_palette(algos) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per algorithm, so every panel and figure of a run agrees."""
    names = sorted(set(algos))
    # tab10 repeats itself past 10 names: continue with Dark2's 8 (18 distinct), then husl hues
    colours = sns.color_palette("tab10") + sns.color_palette("Dark2")
    if len(names) > len(colours):
        colours = sns.color_palette("husl", len(names))
    return dict(zip(names, colours[: len(names)], strict=True))


def mean_band(
    df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, size: float = 0.95
) -> pd.DataFrame:
    """Per env step of ``df`` (one algorithm's ``env_step, seed, value`` rows): the mean over
    seeds and a percentile bootstrap CI of it (seeds redrawn with replacement, ``n_boot`` times).
    Columns ``env_step, value, low, high, seeds``."""
    rng = np.random.default_rng(seed)
    rows = []
    tail = 100 * (1 - size) / 2
    for step, g in df.groupby("env_step", sort=True):
        v = g["value"].to_numpy(dtype=np.float64)
        if len(v) > 1:
            boot = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
            low, high = np.percentile(boot, [tail, 100 - tail])
        else:
            low = high = v[0]
        rows.append((step, v.mean(), low, high, len(v)))
    return pd.DataFrame(rows, columns=["env_step", "value", "low", "high", "seeds"])


def plot_curves(
    curves: pd.DataFrame,
    *,
    metric: str = EVAL,
    ax: Axes | None = None,
    seed: int = 0,
    palette: dict[str, tuple[float, float, float]] | None = None,
    legend: bool = True,
) -> Axes:
    """Mean of ``metric`` per algorithm with a 95% bootstrap CI band across seeds
    (:func:`mean_band`); the legend (``legend``) right of the axes, off the data."""
    ax = ax or plt.gca()
    df = curves[curves["metric"] == metric]
    palette = palette or algo_palette(df["algo"])
    algos = [a for a in palette if a in set(df["algo"])]
    for i, algo in enumerate(algos):
        band = mean_band(df[df["algo"] == algo], seed=seed)
        # thicker first, thinner on top: curves that coincide (CEM under MPPI) stay visible
        lw = 3.0 - 1.8 * i / max(len(algos) - 1, 1)
        ax.plot(band["env_step"], band["value"], color=palette[algo], lw=lw, label=algo,
                marker="o" if len(band) < 3 else None, ms=3)  # fmt: skip
        ax.fill_between(band["env_step"], band["low"], band["high"], color=palette[algo],
                        alpha=0.2, lw=0)  # fmt: skip
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric.replace("_", " "))
    if legend and algos:
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize="small")
    return ax


def model_error_by_horizon(
    curves: pd.DataFrame, *, late: float = 0.5, prefix: str = "model_err_h"
) -> pd.DataFrame:
    """Per algorithm, seed and horizon ``k``: the mean held-out ``{prefix}{k}`` (default the
    observation model's ``model_err_h{k}``) over the last ``late`` fraction of each trial's steps.
    Columns ``algo, seed, horizon, value``."""
    df = curves[curves["metric"].str.fullmatch(prefix + r"\d+")].copy()
    if df.empty:
        return pd.DataFrame(columns=["algo", "seed", "horizon", "value"])
    df["horizon"] = df["metric"].str.removeprefix(prefix).astype(int)
    last = df.groupby(["algo", "seed"])["env_step"].transform("max")
    df = df[df["env_step"] >= (1 - late) * last]
    return df.groupby(["algo", "seed", "horizon"], as_index=False)["value"].mean()


#: The latent models' value-equivalence probe (``tdmpc2``): metric prefix -> axis label.
VE_PROBES = {
    "ve_latent_err_h": "latent consistency error (MSE)",
    "ve_reward_err_h": "reward error (|r_hat - r|)",
    "ve_value_err_h": "value error (|V(z_hat) - V(z)|)",
}


def plot_model_error(
    curves: pd.DataFrame,
    *,
    ax: Axes | None = None,
    seed: int = 0,
    palette: dict[str, tuple[float, float, float]] | None = None,
    prefix: str = "model_err_h",
) -> Axes:
    """The MBPO post's picture: ``k``-step error of the learned model against ``k`` (log-log);
    ``prefix`` picks another ``k``-indexed error (:data:`VE_PROBES`)."""
    ax = ax or plt.gca()
    df = model_error_by_horizon(curves, prefix=prefix)
    palette = palette or algo_palette(df["algo"])
    sns.lineplot(
        data=df,
        x="horizon",
        y="value",
        hue="algo",
        hue_order=[a for a in palette if a in set(df["algo"])],
        palette=palette,
        marker="o",
        errorbar=("ci", 95),
        n_boot=1000,
        seed=seed,
        ax=ax,
    )
    ax.set(xscale="log", yscale="log", xlabel="prediction horizon k (steps)")
    ax.set_ylabel(VE_PROBES.get(prefix, "held-out k-step error (state variances)"))
    return ax


def horizon_weights(curves: pd.DataFrame) -> pd.DataFrame:
    """STEVE's horizon weights ``steve_w_h{i}`` averaged over seeds per algorithm, env step and
    horizon ``i``. Columns ``algo, env_step, horizon, value``."""
    df = curves[curves["metric"].str.fullmatch(r"steve_w_h\d+")].copy()
    if df.empty:
        return pd.DataFrame(columns=["algo", "env_step", "horizon", "value"])
    df["horizon"] = df["metric"].str.removeprefix("steve_w_h").astype(int)
    return df.groupby(["algo", "env_step", "horizon"], as_index=False)["value"].mean()


def plot_model_trust(
    curves: pd.DataFrame,
    *,
    seed: int = 0,
    palette: dict[str, tuple[float, float, float]] | None = None,
) -> plt.Figure | None:
    """One task's value bias of every algorithm that logs it (95% CI across seeds, zero line)
    next to one stacked panel of horizon weights per algorithm with ``steve_w_h{i}``; ``None``
    when the curves have neither."""
    weights = horizon_weights(curves)
    weighted = sorted(weights["algo"].unique())
    has_bias = bool((curves["metric"] == "value_bias").any())
    if not has_bias and not weighted:
        return None
    n = int(has_bias) + len(weighted)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.5), squeeze=False)
    panels = list(axes.flat)
    if has_bias:
        ax = panels.pop(0)
        plot_curves(curves, metric="value_bias", ax=ax, seed=seed, palette=palette)
        ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_ylabel("value prediction - discounted return")
        ax.set_title("value bias at the evaluation start states")
    for ax, algo in zip(panels, weighted, strict=True):
        w = weights[weights["algo"] == algo].pivot(
            index="env_step", columns="horizon", values="value"
        )
        ax.stackplot(
            w.index,
            *(w[h].to_numpy() for h in w.columns),
            labels=[f"h = {h}" for h in w.columns],
            colors=sns.color_palette("crest", len(w.columns)),
        )
        ax.set(xlabel="env steps", ylabel="mean weight", ylim=(0, 1))
        ax.set_title(f"{algo}: weight on each horizon (h = 0: critics alone)")
        ax.legend(loc="lower left", fontsize="small")
    return fig


#: Line styles of the published curves (:mod:`benchmark.published`), all dashed, in greys.
PUBLISHED_STYLE = {"TD-MPC2": "0.15", "TD-MPC": "0.35", "SAC": "0.55", "DreamerV3": "0.7"}


def plot_published(ax: Axes, task: str, curves: pd.DataFrame) -> list[str]:
    """The published curves of ``task`` up to the run's longest budget on it, dashed grey and
    labelled "(published)"; returns the methods drawn."""
    steps = curves.loc[curves["metric"] == EVAL, "env_step"]
    pub = published_curves(task, up_to=float(steps.max()) if len(steps) else None)
    for method, p in pub.groupby("method", sort=False):
        # published every 100k steps: under 4 points in range, markers only (a line between
        # them would invent the curve in between)
        ls = "--" if len(p) >= 4 else "none"
        ax.plot(p["env_step"], p["value"], ls=ls, lw=1.2, marker="X", ms=6,
                color=PUBLISHED_STYLE[method], label=f"{method} (published)")  # fmt: skip
    return list(pub["method"].unique())


def natural_key(name: str) -> list:
    """Sort key that orders ``model_err_h5`` before ``model_err_h10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _log_if_wide(ax: Axes, values: pd.Series) -> None:
    """A log y axis where a metric's positive values span more than two decades."""
    v = values[values > 0]
    if len(v) == len(values) and len(v) and v.max() > 100 * v.min():
        ax.set_yscale("log")


def _short_budgets_readable(ax: Axes, curves: pd.DataFrame) -> None:
    """A symlog x axis where one algorithm's budget is under a twentieth of another's on the
    task (oracle planners at 200 steps beside 15k-step learners), so both are readable."""
    budgets = curves[curves["metric"] == EVAL].groupby("algo")["env_step"].max()
    budgets = budgets[budgets > 0]
    if len(budgets) > 1 and budgets.max() > 20 * budgets.min():
        ax.set_xscale("symlog", linthresh=float(budgets.min()))
        ax.set_xlabel("env steps (linear to the shortest budget, then log)")


def _legend_below(fig: plt.Figure, palette: dict, algos, *, top: float = 1.0) -> None:
    """One legend for the figure's algorithms, under its panels; lays the figure out."""
    names = [a for a in palette if a in set(algos)]
    ncol = min(len(names), 6)
    rows = math.ceil(len(names) / max(ncol, 1))
    bottom = min(0.3, 0.35 * rows / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, top))
    handles = [plt.Line2D([], [], color=palette[a], lw=2, label=a) for a in names]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)


def _save(fig: plt.Figure, path: Path, *, tight: bool = True) -> Path:
    """``path`` (PNG, 150 dpi) and the same figure as PDF beside it; returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None})  # same bytes each time
    plt.close(fig)
    return path


def render(run_dir: str | Path, *, window: tuple[int, int] | None = None) -> list[Path]:
    """Render every figure and table of a run from its ``curves.csv``; returns the files written.
    ``window=(low, high)`` adds ``summary_<low>-<high>.md``/``.tex``: each seed scored by its mean
    return over the evaluations in ``(low, high]``."""
    run_dir = Path(run_dir)
    curves = load_curves(run_dir)
    out = run_dir / "plots"
    written: list[Path] = []
    sns.set_theme(style="whitegrid", context="paper")
    tasks = sorted(curves.loc[curves["metric"] == EVAL, "env"].unique())
    palette = algo_palette(curves["algo"])
    for task in tasks:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_published(ax, task, curves[curves["env"] == task])
        plot_curves(curves[curves["env"] == task], ax=ax, palette=palette)
        _short_budgets_readable(ax, curves[curves["env"] == task])
        ax.set_title(task)
        written.append(_save(fig, out / f"{file_part(task)}.png"))

        diag = curves[(curves["env"] == task) & ~curves["metric"].isin(NOT_DIAGNOSTIC)]
        metrics = sorted(diag["metric"].unique(), key=natural_key)
        if metrics:
            cols = min(3, len(metrics))
            rows = math.ceil(len(metrics) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            for ax, m in zip(axes.flat, metrics, strict=False):
                plot_curves(diag, metric=m, ax=ax, palette=palette, legend=False)
                ax.set_title(m)
                _log_if_wide(ax, diag.loc[diag["metric"] == m, "value"])
            for ax in list(axes.flat)[len(metrics) :]:
                ax.set_visible(False)
            fig.suptitle(f"{task}: diagnostics")
            _legend_below(fig, palette, diag["algo"], top=1 - 0.3 / (3 * rows))
            written.append(_save(fig, out / f"{file_part(task)}_diagnostics.png", tight=False))
        if not model_error_by_horizon(curves[curves["env"] == task]).empty:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            plot_model_error(curves[curves["env"] == task], ax=ax, palette=palette)
            ax.set_title(f"{task}: compounding model error (second half of training)")
            written.append(_save(fig, out / f"{file_part(task)}_model_error.png"))
        here = curves[curves["env"] == task]
        probes = [p for p in VE_PROBES if not model_error_by_horizon(here, prefix=p).empty]
        if probes:
            fig, axes = plt.subplots(
                1, len(probes), figsize=(4.5 * len(probes), 3.5), squeeze=False
            )
            for ax, p in zip(axes.flat, probes, strict=True):
                plot_model_error(here, ax=ax, palette=palette, prefix=p)
            fig.suptitle(f"{task}: value-equivalence probe, open loop on evaluation episodes")
            written.append(_save(fig, out / f"{file_part(task)}_value_equivalence.png"))
        fig = plot_model_trust(curves[curves["env"] == task], palette=palette)
        if fig is not None:
            fig.suptitle(task)
            written.append(_save(fig, out / f"{file_part(task)}_model_trust.png"))

    if tasks:
        cols = min(3, len(tasks))
        rows = math.ceil(len(tasks) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.3 * rows), squeeze=False)
        for ax, task in zip(axes.flat, tasks, strict=False):
            here = curves[curves["env"] == task]
            plot_published(ax, task, here)
            plot_curves(here, ax=ax, palette=palette, legend=False)
            _short_budgets_readable(ax, here)
            ax.set_title(task)
        for ax in list(axes.flat)[len(tasks) :]:
            ax.set_visible(False)
        _legend_below(fig, palette, curves["algo"])
        written.append(_save(fig, out / "all_tasks.png", tight=False))

    figs, captions = render_aggregates(curves, palette)
    for name, fig in figs:
        written.append(_save(fig, out / f"{name}.png", tight=False))
    captions = {"all_tasks": curve_caption(curves), **captions}
    written.append(out / "captions.md")
    written[-1].write_text(
        "# Figure captions\n\n"
        + "".join(f"## {name}.png / {name}.pdf\n\n{text}\n\n" for name, text in captions.items())
    )

    table = summary(curves)
    written += write_tables(table, run_dir)
    if window is not None:
        low, high = window
        table = summary(curves, window=window).rename(columns={"final_step": "window"})
        table["window"] = f"({low}, {high}]"
        written += write_tables(
            table,
            run_dir,
            name=f"summary_{low}-{high}",
            caption=f"Mean evaluation return over the evaluations in ({low}, {high}] env steps, "
            "per seed, then across seeds.",
        )
    return written


def curve_caption(curves: pd.DataFrame) -> str:
    """Caption of the per-task return curves (``<task>.png``, ``all_tasks.png``)."""
    ev = curves[curves["metric"] == EVAL]
    runs = ev.groupby(["env", "algo"]).agg(seeds=("seed", "nunique"), steps=("env_step", "max"))
    published = {
        f"{m} on {t}"
        for t in ev["env"].unique()
        for m in published_curves(str(t), up_to=ev.loc[ev["env"] == t, "env_step"].max())["method"]
    }
    few = (runs["seeds"] < FEW_SEEDS).any()
    return (
        "Mean evaluation return against env steps; band: 95% bootstrap confidence interval of "
        "the mean across seeds (1000 resamples). Seeds and budget per task and algorithm: "
        + "; ".join(
            f"{e} / {a}: {r.seeds} seeds, {int(r.steps)} steps" for (e, a), r in runs.iterrows()
        )
        + "."
        + (f" Fewer than {FEW_SEEDS} seeds somewhere: bands are rough." if few else "")
        + (
            " Grey crosses (dashed where 4 or more points): published curves, mean over their "
            "seeds, every 100k agent steps, of "
            + ", ".join(sorted(published))
            + f" ({SOURCE}; tdmpc2's protocol, the suite's default for dmc: tasks)."
            if published
            else ""
        )
    )


def write_tables(
    table: pd.DataFrame,
    run_dir: Path,
    *,
    name: str = "summary",
    caption: str = "Final evaluation return (last evaluation of each seed).",
) -> list[Path]:
    """``<name>.md`` and ``<name>.tex`` of the returns in ``table`` (:func:`summary`'s columns;
    ``window`` in place of ``final_step`` for a window table). Per task the best mean and IQM
    are in bold; rows with fewer than :data:`FEW_SEEDS` seeds carry a dagger and the caption
    says why their intervals are unreliable. The LaTeX is a ``table`` float with booktabs rules,
    the caption and a label ``tab:<run>-<name>``."""
    step = "window" if "window" in table.columns else "final_step"
    best_mean = table.groupby("env")["mean"].transform("max")
    best_iqm = table.groupby("env")["iqm"].transform("max")
    few = table["seeds"] < FEW_SEEDS
    note = (
        f" Daggers: fewer than {FEW_SEEDS} seeds, so the 95% CI (a percentile bootstrap over "
        "seeds) is unreliable: with 2 seeds it is their [min, max], with 1 a point. Below 4 "
        "seeds the IQM equals the mean (a 25% trim removes nothing). Bold: the best mean and "
        "IQM per task (compare budgets first)."
        if few.any()
        else " Bold: the best mean and IQM per task (compare budgets first)."
    )

    def cells(bold: str, dagger: str, pm: str) -> pd.DataFrame:
        def b(text: str, on: bool) -> str:
            return bold.format(text) if on else text

        return table.assign(
            **{
                "seeds": [
                    f"{n}{dagger if f else ''}" for n, f in zip(table["seeds"], few, strict=True)
                ],
                "mean ± std": [
                    b(f"{m:.1f}", m == bm) + f" {pm} {sd:.1f}"
                    for m, sd, bm in zip(table["mean"], table["std"], best_mean, strict=True)
                ],
                "IQM": [
                    b(f"{v:.1f}", v == bv) for v, bv in zip(table["iqm"], best_iqm, strict=True)
                ],
                "95% CI": [
                    f"[{lo:.1f}, {hi:.1f}]"
                    for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
                ],
            }
        )[["env", "algo", "seeds", step, "mean ± std", "IQM", "95% CI"]]

    shown = cells("**{}**", "†", "±")
    md = run_dir / f"{name}.md"
    header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
    body = "".join(
        "| " + " | ".join(str(v) for v in row) + " |\n" for row in shown.itertuples(index=False)
    )
    md.write_text(caption + note + "\n\n" + header + body)

    latex = cells(r"\textbf{{{}}}", r"$^\dagger$", r"$\pm$")
    latex = latex.assign(
        env=latex["env"].str.replace("_", r"\_"), algo=latex["algo"].str.replace("_", r"\_")
    )
    heads = ["Task", "Algorithm", "Seeds", "Window" if step == "window" else "Steps",
             r"Mean $\pm$ std", "IQM", r"95\% CI"]  # fmt: skip
    rows = []
    for i, row in enumerate(latex.itertuples(index=False)):
        if i and latex["env"].iloc[i] != latex["env"].iloc[i - 1]:
            rows.append(r"\midrule")
        rows.append(" & ".join(str(v) for v in row) + r" \\")
    label = f"tab:{file_part(run_dir.name)}-{name}"
    tex = run_dir / f"{name}.tex"
    text = (caption + note).replace("%", r"\%")
    tex.write_text(
        "% needs \\usepackage{booktabs}\n"
        "\\begin{table}[t]\n\\centering\n"
        f"\\caption{{{text}}}\n\\label{{{label}}}\n"
        "\\begin{tabular}{llrrrrr}\n\\toprule\n"
        + " & ".join(heads)
        + " \\\\\n\\midrule\n"
        + "\n".join(rows)
        + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n"
    )
    return [md, tex]


class MergeError(ValueError):
    """Runs that cannot be merged (differing configs, a trial in two runs, a missing file)."""


#: Trial settings compared across merged runs next to the resolved configs.
BUDGET = ("total_steps", "eval_every", "eval_episodes")


def _renamed(pair: str, suffix: str | None) -> str:
    """``"algo__task"`` with the algorithm renamed ``algo-suffix`` (unchanged without one)."""
    algo, _, task = pair.partition("__")
    return f"{algo}-{suffix}__{task}" if suffix else pair


def _run_settings(run_dir: Path, suffix: str | None = None) -> dict[str, dict[str, Any]]:
    """``{"algo__task": {field: value}}``: the resolved config and the budget of each pair
    (algorithms renamed ``algo-suffix`` when the run is merged as a variant)."""
    meta = json.loads((run_dir / "meta.json").read_text())
    out = {_renamed(k, suffix): dict(v) for k, v in (meta.get("resolved_configs") or {}).items()}
    trials = run_dir / "trials.json"
    for spec in json.loads(trials.read_text()) if trials.exists() else []:
        pair = out.setdefault(_renamed(f"{spec['algo']}__{spec['task']}", suffix), {})
        pair.update({f"trial.{k}": spec[k] for k in BUDGET if k in spec})
    return out


def config_mismatches(
    run_dirs: Sequence[Path], variants: dict[str, str] | None = None
) -> list[str]:
    """One line per (algorithm, task) whose resolved config or budget differs between runs,
    naming the differing fields and their values per run (``variants``: see :func:`merge_runs`)."""
    variants = variants or {}
    settings = {d.name: _run_settings(d, variants.get(d.name)) for d in run_dirs}
    lines = []
    pairs = sorted({p for s in settings.values() for p in s})
    for pair in pairs:
        present = {run: s[pair] for run, s in settings.items() if pair in s}
        if len(present) < 2:
            continue
        fields = sorted({f for cfg in present.values() for f in cfg})
        diff = [f for f in fields if len({json.dumps(c.get(f)) for c in present.values()}) > 1]
        if diff:
            algo, _, task = pair.partition("__")
            shown = "; ".join(
                f"{f}: " + ", ".join(f"{run}={c.get(f)!r}" for run, c in present.items())
                for f in diff
            )
            lines.append(f"{algo} on {task}: {shown}")
    return lines


def merge_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    allow_config_mismatch: bool = False,
    variants: dict[str, str] | None = None,
    window: tuple[int, int] | None = None,
) -> list[Path]:
    """Merge finished runs into ``out_dir`` (which must not exist) and render it; returns the
    files written. ``variants`` maps a run's folder name to a suffix: every algorithm of that
    run is renamed ``<algo>-<suffix>`` in the merged curves, trials and configs (e.g.
    ``{"oracle-ip": "oracle"}`` puts ``mbpo-oracle`` next to ``mbpo``); ``window``: as
    :func:`render`'s. Raises
    :class:`MergeError` before writing anything when the runs cannot be compared (see the
    module docstring)."""
    dirs = [Path(d) for d in run_dirs]
    out = Path(out_dir)
    variants = dict(variants or {})
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise MergeError("a run is named twice; list each run once")
    names = [d.name for d in dirs]
    for run, suffix in variants.items():
        if run not in names:
            raise MergeError(
                f"--variant {run}={suffix}: {run!r} is not one of the merged runs ({', '.join(names)})"
            )
        if not suffix or not all(c.isalnum() or c in "_." for c in suffix):
            raise MergeError(
                f"--variant {run}={suffix!r}: the name must be letters, digits, '_' or '.', "
                f"e.g. --variant {run}=oracle"
            )
    for d in dirs:
        for name in ("curves.csv", "meta.json"):
            if not (d / name).exists():
                raise MergeError(f"no {name} in {d}: merge finished runs only")
    if out.exists():
        raise MergeError(
            f"{out} exists; results are never overwritten. Pass --out with another name"
        )
    curves = []
    for d in dirs:
        c = load_curves(d)
        check_unique(c, where=str(d))
        if d.name in variants:
            c = c.assign(algo=c["algo"] + "-" + variants[d.name])
        curves.append(c.assign(run_id=d.name))
    seen: dict[tuple[str, str, int], str] = {}
    for d, c in zip(dirs, curves, strict=True):
        for algo, env, seed in c[["algo", "env", "seed"]].drop_duplicates().itertuples(index=False):
            key = (algo, env, int(seed))
            if key in seen:
                raise MergeError(
                    f"{algo} on {env} seed {seed} is in both {seen[key]} and {d.name}: merge runs "
                    "with different seeds (e.g. SEEDS=3-4 next to SEEDS=3)"
                )
            seen[key] = d.name
    mismatches = config_mismatches(dirs, variants)
    if mismatches and not allow_config_mismatch:
        raise MergeError(
            "the runs' configs differ for the same algorithm and task ("
            + " | ".join(mismatches)
            + "); pass --allow-config-mismatch to merge them anyway"
        )
    trials = []
    for d in dirs:
        if (d / "trials.csv").exists():
            t = pd.read_csv(d / "trials.csv").assign(run_id=d.name)
            if d.name in variants and "algo" in t:
                t["algo"] = t["algo"] + "-" + variants[d.name]
            trials.append(t)
    metas = {d.name: json.loads((d / "meta.json").read_text()) for d in dirs}
    configs: dict[str, Any] = {}
    for run, m in metas.items():
        for pair, cfg in (m.get("resolved_configs") or {}).items():
            configs.setdefault(_renamed(pair, variants.get(run)), cfg)
    out.mkdir(parents=True)
    merged = pd.concat(curves, ignore_index=True)
    merged.to_csv(out / "curves.csv", index=False)
    if trials:
        t = pd.concat(trials, ignore_index=True)
        t[["run_id", *[c for c in t.columns if c != "run_id"]]].to_csv(
            out / "trials.csv", index=False
        )
    meta = {
        "run_id": out.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "merged_from": [d.name for d in dirs],
        "sources": {
            run: {k: m.get(k) for k in ("created", "finished", "git", "request", "trial_status")}
            for run, m in metas.items()
        },
        "allow_config_mismatch": allow_config_mismatch,
        "config_mismatches": mismatches,
        "variants": variants,
    }
    if mismatches:  # each run's own, since they differ
        meta["resolved_configs_by_run"] = {r: m.get("resolved_configs") for r, m in metas.items()}
    else:
        meta["resolved_configs"] = configs
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return render(out, window=window)
