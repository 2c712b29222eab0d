"""Cross-task figures (issue 18): normalised scores, the rliable views and their captions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.aggregate import (
    final_normalized,
    normalized_scores,
    oracle_pairs,
    sample_efficiency,
)
from benchmark.plots import render
from benchmark.published import published_curves
from envs.scores import RANDOM, REFERENCES


def _curves() -> pd.DataFrame:
    """``good`` reaches each task's reference at its last evaluation, ``bad`` stays at random;
    3 seeds on pendulum and cartpole, 2 on a ``gym:`` task without a reference."""
    rows = []
    for task, seeds in (("pendulum", 3), ("cartpole", 3), ("gym:Swimmer-v5", 2)):
        lo = RANDOM.get(task, 0.0)
        hi = REFERENCES.get(task, (100.0, ""))[0]
        for seed in range(seeds):
            for step in (0, 500, 1000):
                frac = step / 1000
                for algo, target in (("good", hi), ("bad", lo)):
                    ret = lo + frac * (target - lo) + 0.01 * seed * (hi - lo)
                    rows.append((algo, task, seed, step, 2.0 * step + seed, "eval_return", ret))
    df = pd.DataFrame(
        rows, columns=["algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"]
    )
    return df.assign(run_id="r")


def test_scores_are_normalised_by_the_task_references():
    finals = final_normalized(_curves())
    assert set(finals["env"]) == {"pendulum", "cartpole"}  # the gym: task has no reference
    good = finals[finals["algo"] == "good"].set_index(["env", "seed"])["value"]
    assert np.allclose(good.to_numpy(), [1.0, 1.01, 1.02] * 2)
    bad = finals[finals["algo"] == "bad"]["value"].to_numpy()
    assert np.allclose(np.sort(bad), np.sort([0.0, 0.01, 0.02] * 2))
    assert len(normalized_scores(_curves())) == 2 * 2 * 3 * 3
    eff = sample_efficiency(_curves(), points=3, reps=200)
    at_end = eff[(eff["algo"] == "good") & (eff["env_step"] == 1000)].iloc[0]
    assert at_end["tasks"] == 2 and np.isclose(at_end["value"], 1.01)
    assert eff.loc[eff["env_step"] == 0, "value"].abs().max() < 0.03


def test_render_writes_every_aggregate_figure_as_png_and_pdf_with_captions(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _curves().to_csv(run / "curves.csv", index=False)
    files = render(run)
    for name in ("aggregate", "improvement", "profile", "sample_efficiency", "wallclock"):
        png = run / "plots" / f"{name}.png"
        assert png in files and png.stat().st_size > 0
        assert png.with_suffix(".pdf").stat().st_size > 0
    captions = (run / "plots" / "captions.md").read_text()
    for name in ("all_tasks", "aggregate", "improvement", "profile", "wallclock"):
        assert f"## {name}.png / {name}.pdf" in captions
    assert "Left out (no score reference): gym:Swimmer-v5" in captions
    assert "Fewer than 5 seeds" in captions and "3 seeds" in captions
    assert (run / "plots" / "pendulum.pdf").exists()  # every figure, not only the new ones


def test_published_curves_are_read_for_dmc_tasks_at_their_protocol_only(tmp_path):
    pub = published_curves("dmc:cartpole-swingup", up_to=100_000)
    assert set(pub["method"]) == {"TD-MPC2", "TD-MPC", "SAC", "DreamerV3"}
    at = pub[pub["env_step"] == 100_000].set_index("method")["value"]
    assert np.isclose(at["TD-MPC2"], 839.4) and np.isclose(at["SAC"], 834.9667, atol=1e-4)
    assert published_curves("dmc:cartpole-swingup@4").empty  # another action repeat
    assert published_curves("pendulum").empty
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        ("sac", "dmc:cartpole-swingup", s, step, 1.0, "eval_return", 8.0 * step / 1000)
        for s in (0, 1)
        for step in (0, 50_000, 100_000)
    ]
    cols = ["algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"]
    pd.DataFrame(rows, columns=cols).assign(run_id="r").to_csv(run / "curves.csv", index=False)
    render(run)
    captions = (run / "plots" / "captions.md").read_text()
    assert "TD-MPC2 on dmc:cartpole-swingup" in captions and "MIT" in captions


def test_oracle_pairs_match_a_plugin_with_its_true_model_variant(tmp_path):
    rows = []
    for algo, values in (("mbpo", (0, 200, 1000)), ("mbpo-oracle", (0, 800, 1000)),
                         ("sac", (0, 100, 900))):  # fmt: skip
        for seed in (0, 1):
            for step, v in zip((0, 500, 1000), values, strict=True):
                rows.append((algo, "inverted_pendulum", seed, step, 1.0, "eval_return", v + seed))
    cols = ["algo", "env", "seed", "env_step", "wallclock_s", "metric", "value"]
    curves = pd.DataFrame(rows, columns=cols).assign(run_id="r")
    pairs = oracle_pairs(curves)
    assert set(pairs["algo"]) == {"mbpo"} and len(pairs) == 4  # sac has no true-model variant
    m = pairs.groupby("model")[["final", "auc"]].mean()
    assert m.loc["learned", "final"] == m.loc["true", "final"] == 1000.5
    assert m.loc["learned", "auc"] == 600.5 and m.loc["true", "auc"] == 900.5
    run = tmp_path / "run"
    run.mkdir()
    curves.to_csv(run / "curves.csv", index=False)
    render(run)
    assert (run / "plots" / "oracle_gap.pdf").exists()
    assert (
        "mbpo on inverted_pendulum: 1000 vs 1000 / 600 vs 900"
        in (run / "plots" / "captions.md").read_text()
    )
