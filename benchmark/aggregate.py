"""Figures across tasks (rliable's views, Agarwal et al. 2021), from a run's stored curves.

Every score here is **normalised** per task, ``(return - random) / (reference - random)``
(:mod:`envs.scores`: 0 is the suite's own random policy, 1 the task's stated reference); tasks
without a reference are left out and named in the caption. A trial's score is its last
evaluation. Writes into ``results/<run>/plots/`` (PNG and PDF each) and ``captions.md``:

- ``aggregate``: median, IQM, mean and optimality gap of every algorithm over its tasks and
  seeds, with 95% stratified-bootstrap intervals (50,000 resamples);
- ``improvement``: the probability that algorithm X (row) beats Y (column) on a task, averaged
  over the tasks both ran, with its interval;
- ``profile``: performance profiles, the fraction of runs above each normalised score, with
  bands (2,000 resamples);
- ``sample_efficiency``: IQM of the normalised evaluation score against env steps over the
  tasks whose budget reaches each step, with bands;
- ``wallclock``: per task, the mean evaluation return against the trial's wall-clock seconds;
- ``oracle_gap``: where a run holds a plugin on both its learned and the true model (``X`` and
  ``X-oracle``, from ``--variant RUN=oracle``), their final returns side by side.

The compounding-error view across algorithms is ``<task>_model_error`` (:mod:`benchmark.plots`).

All intervals are seeded (``seed``) and reproducible bit for bit (:mod:`benchmark.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark import stats
from envs.scores import score_reference

EVAL = "eval_return"

#: Below this many runs per task an interval is called unreliable in captions and tables.
FEW_SEEDS = 5


def normalized_scores(curves: pd.DataFrame, metric: str = EVAL) -> pd.DataFrame:
    """Every evaluation of ``metric`` normalised by its task's reference: columns ``algo, env,
    seed, env_step, wallclock_s, value`` (normalised) and ``raw``. Tasks without a reference are
    dropped (:func:`unnormalised_tasks` names them)."""
    df = curves[curves["metric"] == metric]
    parts = []
    for env, g in df.groupby("env"):
        ref = score_reference(str(env))
        if ref is not None:
            parts.append(g.assign(raw=g["value"], value=ref.normalize(g["value"].to_numpy())))
    cols = ["algo", "env", "seed", "env_step", "wallclock_s", "value", "raw"]
    return pd.concat(parts)[cols] if parts else pd.DataFrame(columns=cols)


def unnormalised_tasks(curves: pd.DataFrame) -> list[str]:
    """The run's evaluated tasks that have no score reference."""
    tasks = curves.loc[curves["metric"] == EVAL, "env"].unique()
    return sorted(str(t) for t in tasks if score_reference(str(t)) is None)


def score_matrices(finals: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``algo -> [runs, tasks]`` frame of final normalised scores (columns: the algorithm's
    tasks; a task with fewer seeds is NaN-padded at the bottom)."""
    out = {}
    for algo, g in finals.groupby("algo", sort=True):
        cols = {
            env: pd.Series(t.sort_values("seed")["value"].to_numpy())
            for env, t in g.groupby("env", sort=True)
        }
        out[str(algo)] = pd.DataFrame(cols)
    return out


def final_normalized(curves: pd.DataFrame) -> pd.DataFrame:
    """The last normalised evaluation of each (algo, env, seed)."""
    norm = normalized_scores(curves)
    return norm.sort_values("env_step").groupby(["algo", "env", "seed"], as_index=False).last()


def pairwise_improvement(
    matrices: dict[str, pd.DataFrame], *, reps: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Probability of improvement of every ordered pair over the tasks both ran (NaN where they
    share none). Columns ``x, y, value, ci_low, ci_high, tasks``."""
    rows = []
    names = list(matrices)
    for i, x in enumerate(names):
        for j, y in enumerate(names):
            if i == j:
                continue
            common = sorted(set(matrices[x].columns) & set(matrices[y].columns))
            if not common:
                rows.append({"x": x, "y": y, "value": np.nan, "ci_low": np.nan,
                             "ci_high": np.nan, "tasks": 0})  # fmt: skip
                continue
            rng = np.random.default_rng([seed, i, j])
            v, lo, hi = stats.improvement_interval(
                matrices[x][common].to_numpy(), matrices[y][common].to_numpy(), reps=reps, rng=rng
            )
            rows.append({"x": x, "y": y, "value": v, "ci_low": lo, "ci_high": hi,
                         "tasks": len(common)})  # fmt: skip
    return pd.DataFrame(rows, columns=["x", "y", "value", "ci_low", "ci_high", "tasks"])


def sample_efficiency(
    curves: pd.DataFrame, *, points: int = 20, reps: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """IQM of the normalised evaluation score against env steps, per algorithm: at each step of
    a grid of ``points`` up to the algorithm's longest budget, each trial contributes its latest
    evaluation at or before the step, over the tasks whose budget reaches it. Columns ``algo,
    env_step, value, ci_low, ci_high, tasks``."""
    norm = normalized_scores(curves)
    rows = []
    for k, (algo, g) in enumerate(norm.groupby("algo", sort=True)):
        budget = g.groupby("env")["env_step"].max()
        grid = np.unique(np.linspace(0, budget.max(), points).round().astype(np.int64))
        rng = np.random.default_rng([seed, k])
        for step in grid:
            live = g[g["env"].isin(budget.index[budget >= step]) & (g["env_step"] <= step)]
            if live.empty:
                continue
            last = live.sort_values("env_step").groupby(["env", "seed"], as_index=False).last()
            m = score_matrices(last.assign(algo=algo))[str(algo)].to_numpy()
            boot = stats.aggregate_iqm(stats.stratified_resample(m, reps, rng))
            low, high = np.percentile(boot, [2.5, 97.5])
            rows.append({"algo": algo, "env_step": int(step), "value": stats.iqm(m),
                         "ci_low": low, "ci_high": high, "tasks": m.shape[1]})  # fmt: skip
    return pd.DataFrame(rows, columns=["algo", "env_step", "value", "ci_low", "ci_high", "tasks"])


def wallclock_curves(curves: pd.DataFrame, metric: str = EVAL) -> pd.DataFrame:
    """Per (algo, env, evaluation step): the mean over seeds of ``metric`` and of the trial's
    wall-clock seconds at that evaluation, with the seeds' standard deviation of the return.
    Columns ``algo, env, env_step, wallclock_s, value, std, seeds``."""
    df = curves[curves["metric"] == metric]
    g = df.groupby(["algo", "env", "env_step"], as_index=False)
    out = g.agg(
        wallclock_s=("wallclock_s", "mean"),
        value=("value", "mean"),
        std=("value", "std"),
        seeds=("seed", "nunique"),
    )
    return out.fillna({"std": 0.0})


# --- figures -------------------------------------------------------------------------------


def _legend_right(fig: plt.Figure, palette: dict, algos: Sequence[str]) -> None:
    """The algorithms' legend in a margin right of the axes (never over the data); lays out."""
    width = fig.get_figwidth()
    margin = min(0.45, (0.45 + 0.085 * max(len(a) for a in algos)) / width)
    fig.tight_layout(rect=(0, 0, 1 - margin, 1))
    handles = [plt.Line2D([], [], color=palette[a], lw=2, label=a) for a in algos]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - margin, 0.5),
               frameon=False)  # fmt: skip


def plot_aggregates(estimates: pd.DataFrame, palette: dict) -> plt.Figure:
    """One panel per aggregate, one interval per algorithm (rliable's ``plot_interval_estimates``)."""
    metrics = list(stats.AGGREGATES)
    algos = sorted(estimates["algo"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 0.45 * len(algos) + 1))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        e = estimates[estimates["metric"] == metric].set_index("algo")
        for y, algo in enumerate(algos):
            if algo not in e.index:
                continue
            r = e.loc[algo]
            ax.barh(y, r["ci_high"] - r["ci_low"], left=r["ci_low"], height=0.6,
                    color=palette[algo], alpha=0.75)  # fmt: skip
            ax.vlines(r["value"], y - 0.3, y + 0.3, color="black", lw=1.5)
        ax.set_yticks(range(len(algos)), algos if ax is np.atleast_1d(axes)[0] else [])
        ax.set_title(metric + (" (lower is better)" if metric == "Optimality gap" else ""))
        ax.set_xlabel("normalised score")
        ax.grid(axis="y", visible=False)
        ax.set_ylim(len(algos) - 0.5, -0.5)  # first algorithm on top
    fig.tight_layout()
    return fig


def plot_improvement(poi: pd.DataFrame) -> plt.Figure:
    """Heat map of P(row beats column), the interval in each cell."""
    names = sorted(set(poi["x"]) | set(poi["y"]))
    n = len(names)
    grid = np.full((n, n), np.nan)
    fig, ax = plt.subplots(figsize=(1.0 * n + 2.5, 0.8 * n + 1.5))
    for r in poi.itertuples():
        i, j = names.index(r.x), names.index(r.y)
        grid[i, j] = r.value
        if not np.isnan(r.value):
            ink = "white" if abs(r.value - 0.5) > 0.3 else "black"
            ax.text(j, i, f"{r.value:.2f}\n[{r.ci_low:.2f}, {r.ci_high:.2f}]", ha="center",
                    va="center", fontsize=7, color=ink)  # fmt: skip
    im = ax.imshow(grid, cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("Y")
    ax.set_ylabel("X")
    ax.set_title("P(X > Y) on a task, averaged over shared tasks")
    ax.grid(False)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def _band_figure(df: pd.DataFrame, x: str, palette: dict, xlabel: str, ylabel: str):
    """One line per algorithm of ``value`` against ``x`` with its ``ci_low``-``ci_high`` band,
    the legend right of the axes."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    algos = sorted(df["algo"].unique())
    for algo in algos:
        p = df[df["algo"] == algo]
        ax.plot(p[x], p["value"], color=palette[algo], lw=1.8)
        ax.fill_between(p[x], p["ci_low"], p["ci_high"], color=palette[algo], alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend_right(fig, palette, algos)
    return fig, ax


def plot_profiles(profiles: pd.DataFrame, palette: dict) -> plt.Figure:
    """Fraction of runs with a normalised score above tau, with bands."""
    fig, _ = _band_figure(profiles, "tau", palette, r"normalised score $\tau$",
                          r"fraction of runs with score $> \tau$")  # fmt: skip
    return fig


def plot_sample_efficiency(curve: pd.DataFrame, palette: dict) -> plt.Figure:
    """IQM normalised score against env steps, with bands."""
    fig, ax = _band_figure(curve, "env_step", palette, "env steps", "IQM normalised score")
    shortest = max(int(curve.groupby("algo")["env_step"].max().min()), 1)
    if curve["env_step"].max() > 20 * shortest:  # budgets of 200 beside 15k: both readable
        ax.set_xscale("symlog", linthresh=shortest)
        ax.set_xlabel("env steps (linear to the shortest budget, then log)")
    return fig


def plot_wallclock(wall: pd.DataFrame, palette: dict) -> plt.Figure:
    """Per task: mean evaluation return against wall-clock seconds (log axis), ± 1 std."""
    tasks = sorted(wall["env"].unique())
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        t = wall[wall["env"] == task]
        for algo, c in t.groupby("algo", sort=True):
            c = c.sort_values("env_step")
            x = c["wallclock_s"].clip(lower=1e-2)
            ax.plot(x, c["value"], color=palette[algo], lw=1.5, marker="o", ms=2)
            ax.fill_between(x, c["value"] - c["std"], c["value"] + c["std"],
                            color=palette[algo], alpha=0.15)  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("wall-clock seconds (log)")
        ax.set_ylabel("eval return")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    _legend_right(fig, palette, sorted(wall["algo"].unique()))
    return fig


#: Suffixes that ``--variant RUN=NAME`` merges give a plugin run on the true model.
ORACLE_SUFFIXES = ("-oracle", "-true")


def oracle_pairs(curves: pd.DataFrame) -> pd.DataFrame:
    """Per task and plugin run both on its learned model (``X``) and on the true model
    (``X-oracle`` or ``X-true``, a ``--variant`` merge): each seed's final evaluation return
    (``final``) and its mean over all evaluations after step 0 (``auc``, the area under the
    learning curve over the budget: learning speed, where both reach the task's maximum).
    Columns ``env, algo, model`` (``learned`` / ``true``) ``, seed, steps`` (the last
    evaluation's step) ``, final, auc``."""
    ev = curves[(curves["metric"] == EVAL) & (curves["env_step"] > 0)]
    finals = stats.final_scores(curves).merge(
        ev.groupby(["algo", "env", "seed"], as_index=False)["value"]
        .mean()
        .rename(columns={"value": "auc"}),
        on=["algo", "env", "seed"],
    )
    names = set(finals["algo"])
    rows = []
    for oracle in sorted(names):
        base = next((oracle.removesuffix(x) for x in ORACLE_SUFFIXES if oracle.endswith(x)), None)
        if base is None or base not in names:
            continue
        for algo, model in ((base, "learned"), (oracle, "true")):
            for r in finals[finals["algo"] == algo].itertuples():
                rows.append((r.env, base, model, r.seed, r.env_step, r.value, r.auc))
    cols = ["env", "algo", "model", "seed", "steps", "final", "auc"]
    return pd.DataFrame(rows, columns=cols)


def plot_oracle_gap(pairs: pd.DataFrame, palette: dict) -> plt.Figure:
    """Per task, its final return (top) and its mean return over the run (bottom): each plugin
    on its learned model (solid) beside the true model (hatched), mean and seeds as dots; the
    gap is what model error costs it."""
    tasks = sorted(pairs["env"].unique())
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 6.4), squeeze=False)
    for ax, (task, col) in zip(
        axes.flat, [(t, c) for c in ("final", "auc") for t in tasks], strict=True
    ):
        t = pairs[pairs["env"] == task].rename(columns={col: "value"})
        algos = sorted(t["algo"].unique())
        for i, algo in enumerate(algos):
            for k, model in enumerate(("learned", "true")):
                v = t[(t["algo"] == algo) & (t["model"] == model)]["value"].to_numpy()
                x = i + (k - 0.5) * 0.38
                ax.bar(
                    x,
                    v.mean(),
                    width=0.36,
                    color=palette.get(algo, "0.5"),
                    alpha=0.9 if model == "learned" else 0.45,
                    hatch=None if model == "learned" else "//",
                    edgecolor="black",
                    lw=0.5,
                )
                ax.scatter(np.full(len(v), x), v, s=8, color="black", zorder=3)  # fmt: skip
        ax.set_xticks(range(len(algos)), algos)
        ax.set_title(f"{task}: learned (solid) vs true model (hatched)", fontsize="small")
        ax.set_ylabel("final eval return" if col == "final" else "mean eval return over the run")
    fig.tight_layout()
    return fig


def render_aggregates(
    curves: pd.DataFrame, palette: dict, *, seed: int = 0, reps: int = 50_000
) -> tuple[list[tuple[str, plt.Figure]], dict[str, str]]:
    """The cross-task figures of a run (not yet saved) and their captions: ``([(name, fig)],
    {name: caption})``. Nothing where no evaluated task has a score reference."""
    figs: list[tuple[str, plt.Figure]] = []
    captions: dict[str, str] = {}
    finals = final_normalized(curves)
    skipped = unnormalised_tasks(curves)
    skip_note = f" Left out (no score reference): {', '.join(skipped)}." if skipped else ""
    if not finals.empty:
        matrices = score_matrices(finals)
        seeds = {a: m.notna().sum().to_dict() for a, m in matrices.items()}
        budgets = finals.groupby(["algo", "env"])["env_step"].max()
        cover = "; ".join(
            f"{a}: " + ", ".join(f"{t} ({n} seeds, {int(budgets[a, t])} steps)"
                                 for t, n in s.items())
            for a, s in seeds.items()
        )  # fmt: skip
        few = min(n for s in seeds.values() for n in s.values()) < FEW_SEEDS
        warn = (
            f" Fewer than {FEW_SEEDS} seeds on some task: the intervals are rough." if few else ""
        )
        norm_note = (
            "Scores normalised per task, (return - random) / (reference - random), random and "
            "reference as in envs/scores.py; a trial's score is its last evaluation."
        )
        est = stats.interval_estimates(
            {a: m.to_numpy() for a, m in matrices.items()}, reps=reps, seed=seed
        )
        figs.append(("aggregate", plot_aggregates(est, palette)))
        captions["aggregate"] = (
            "Median, IQM, mean and optimality gap (rliable's definitions) over each algorithm's "
            "tasks and seeds; bars: 95% stratified-bootstrap intervals "
            f"({reps} resamples, seed {seed}), black: point estimate. {norm_note} Runs: "
            f"{cover}.{warn}{skip_note}"
        )
        if len(matrices) > 1:
            poi = pairwise_improvement(matrices, seed=seed)
            figs.append(("improvement", plot_improvement(poi)))
            captions["improvement"] = (
                "Probability that X (row) scores above Y (column) on a task (Mann-Whitney U / "
                "(n_X n_Y), ties half), averaged over the tasks both ran; 95% stratified-bootstrap "
                f"interval (2000 resamples, X and Y redrawn independently). {norm_note}"
                f"{warn}{skip_note}"
            )
        hi = max(1.0, max(float(np.nanmax(m.to_numpy())) for m in matrices.values()))
        taus = np.linspace(min(0.0, float(finals["value"].min())), hi, 81)
        prof = stats.performance_profiles(
            {a: m.to_numpy() for a, m in matrices.items()}, taus, seed=seed
        )
        figs.append(("profile", plot_profiles(prof, palette)))
        captions["profile"] = (
            "Performance profiles: the fraction of runs (all tasks pooled) whose normalised "
            "final score exceeds tau; bands: 95% stratified-bootstrap intervals (2000 "
            f"resamples). {norm_note} Runs: {cover}.{warn}{skip_note}"
        )
        curve = sample_efficiency(curves, seed=seed)
        if not curve.empty:
            figs.append(("sample_efficiency", plot_sample_efficiency(curve, palette)))
            captions["sample_efficiency"] = (
                "IQM of the normalised evaluation score against env steps, each trial at its "
                "latest evaluation up to the step, over the tasks whose budget reaches it; "
                "bands: 95% stratified-bootstrap intervals (2000 resamples). "
                f"{norm_note}{warn}{skip_note}"
            )
    pairs = oracle_pairs(curves)
    if not pairs.empty:
        figs.append(("oracle_gap", plot_oracle_gap(pairs, palette)))
        means = pairs.groupby(["env", "algo", "model"])[["final", "auc", "steps"]].max()
        means[["final", "auc"]] = pairs.groupby(["env", "algo", "model"])[["final", "auc"]].mean()
        seeds = pairs.groupby(["env", "algo", "model"])["seed"].nunique()
        captions["oracle_gap"] = (
            "Each plugin on its learned model (solid) and on the task's true model (hatched; "
            "the X-oracle / X-true variant of the same run). Top: final evaluation return; "
            "bottom: mean evaluation return over the run (area under the learning curve over "
            "the budget, i.e. learning speed). Bars: mean over seeds, dots: seeds. The gap is "
            "what model error costs (learned vs true, final / over the run; compare budgets "
            "first): "
            + "; ".join(
                f"{a} on {e}: {means.loc[(e, a, 'learned'), 'final']:.0f} vs "
                f"{means.loc[(e, a, 'true'), 'final']:.0f} / "
                f"{means.loc[(e, a, 'learned'), 'auc']:.0f} vs "
                f"{means.loc[(e, a, 'true'), 'auc']:.0f} "
                f"({seeds[(e, a, 'learned')]} / {seeds[(e, a, 'true')]} seeds, "
                f"{means.loc[(e, a, 'learned'), 'steps']:.0f} / "
                f"{means.loc[(e, a, 'true'), 'steps']:.0f} steps)"
                for e, a in sorted({(e, a) for e, a, _ in means.index})
            )
            + "."
        )
    wall = wallclock_curves(curves)
    if not wall.empty:
        figs.append(("wallclock", plot_wallclock(wall, palette)))
        seeds_per = wall.groupby(["algo", "env"])["seeds"].max()
        captions["wallclock"] = (
            "Mean evaluation return (over seeds; band ± 1 std) against the trial's wall-clock "
            "seconds at that evaluation (mean over seeds, log axis; a trial's own time, not the "
            "grid's: trials that shared cores with others ran slower). Seeds: "
            + ", ".join(f"{a} on {e}: {n}" for (a, e), n in seeds_per.items())
            + "."
        )
    return figs, captions
