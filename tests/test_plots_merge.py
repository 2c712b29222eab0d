"""``python -m benchmark plots a,b``: merging finished runs into one set of figures and tables."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from benchmark.__main__ import main
from benchmark.collect import collect
from benchmark.plots import MergeError, merge_runs
from benchmark.run import execute_all, plan
from benchmark.suites import GridRequest


def _run(results: Path, name: str, seeds: tuple[int, ...], steps: int = 200) -> Path:
    """A finished tiny run of the random policy (no Ray), collected but not plotted."""
    req = GridRequest(
        algos=["random"], tasks=["pendulum"], seeds=seeds, steps=steps, eval_every=100,
        eval_episodes=1,
    )  # fmt: skip
    run_dir, specs = plan(req, results, name)
    execute_all(run_dir, specs, use_ray=False)
    collect(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    _run(results, "a", (0, 1))
    _run(results, "b", (2,))
    _run(results, "again", (1,))
    _run(results, "longer", (5,), steps=300)
    return results


@pytest.fixture
def cli(capsys):
    """``python -m benchmark plots ...`` in this process (its output and exit status as a
    subprocess would give them, without a second import of torch and matplotlib)."""

    def run(*args: str) -> SimpleNamespace:
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as stop:  # argparse's errors
            rc = stop.code
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)

    return run


def test_merge_adds_seeds_into_a_new_folder(runs):
    files = merge_runs([runs / "a", runs / "b"], runs / "a+b")
    out = runs / "a+b"
    assert out / "summary.md" in files and out / "plots" / "pendulum.png" in files
    curves = pd.read_csv(out / "curves.csv")
    assert sorted(curves["seed"].unique()) == [0, 1, 2]
    assert set(zip(curves["run_id"], curves["seed"], strict=True)) == {("a", 0), ("a", 1), ("b", 2)}
    a = pd.read_csv(runs / "a" / "curves.csv")
    pd.testing.assert_frame_equal(curves[curves["run_id"] == "a"].reset_index(drop=True), a)
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["run_id"]) == ["a", "a", "b"] and set(trials["status"]) == {"done"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["merged_from"] == ["a", "b"] and meta["config_mismatches"] == []
    assert set(meta["resolved_configs"]) == {"random__pendulum"}
    assert set(meta["sources"]) == {"a", "b"}
    summary = (out / "summary.md").read_text()
    assert "| pendulum | random | 3† |" in summary  # three seeds in one row (†: under 5)
    # results are never overwritten
    with pytest.raises(MergeError, match="never overwritten"):
        merge_runs([runs / "a", runs / "b"], out)


def test_merge_refuses_a_seed_in_two_runs(runs):
    with pytest.raises(MergeError, match="random on pendulum seed 1 is in both a and again"):
        merge_runs([runs / "a", runs / "again"], runs / "x")
    assert not (runs / "x").exists()


def test_merge_refuses_differing_configs_unless_told(runs, tmp_path):
    with pytest.raises(
        MergeError, match=r"random on pendulum: trial\.total_steps: a=200, longer=300"
    ):
        merge_runs([runs / "a", runs / "longer"], runs / "y")
    assert not (runs / "y").exists()
    merge_runs([runs / "a", runs / "longer"], runs / "y", allow_config_mismatch=True)
    meta = json.loads((runs / "y" / "meta.json").read_text())
    assert meta["allow_config_mismatch"] and len(meta["config_mismatches"]) == 1
    assert set(meta["resolved_configs_by_run"]) == {"a", "longer"}


def test_merge_names_a_differing_hyperparameter(runs, tmp_path):
    for name, lr in (("p", 0.001), ("q", 0.002)):
        d = tmp_path / name
        d.mkdir()
        for f in ("curves.csv", "trials.csv", "trials.json"):
            (d / f).write_text((runs / ("a" if name == "p" else "b") / f).read_text())
        cfg = {"class": "SACConfig", "lr": lr, "gamma": 0.99}
        (d / "meta.json").write_text(json.dumps({"resolved_configs": {"sac__pendulum": cfg}}))
    with pytest.raises(MergeError, match=r"sac on pendulum: lr: p=0\.001, q=0\.002\)"):
        merge_runs([tmp_path / "p", tmp_path / "q"], tmp_path / "p+q")


def test_cli_merges_and_refuses_with_one_line(cli, runs):
    bad = cli("plots", "a,again", "--results", str(runs))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr and not (runs / "a+again").exists()
    ok = cli(
        "plots", "b,longer", "--results", str(runs), "--out", "merged", "--allow-config-mismatch"
    )
    assert ok.returncode == 0, ok.stderr
    assert (runs / "merged" / "plots" / "pendulum.png").exists()
    again = cli(
        "plots", "b,longer", "--results", str(runs), "--out", "merged", "--allow-config-mismatch"
    )
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_variant_puts_the_same_plugin_under_two_names(runs):
    """``--variant``: the same (algorithm, task, seed) from two runs with different configs (the
    learned model against the oracle) become two algorithms instead of a refused merge."""
    with pytest.raises(MergeError, match="is in both a and again"):
        merge_runs([runs / "a", runs / "again"], runs / "v0")
    with pytest.raises(MergeError, match="'nope' is not one of the merged runs"):
        merge_runs([runs / "a", runs / "again"], runs / "v0", variants={"nope": "x"})
    with pytest.raises(MergeError, match="letters, digits"):
        merge_runs([runs / "a", runs / "again"], runs / "v0", variants={"again": "a b"})
    assert not (runs / "v0").exists()
    merge_runs([runs / "a", runs / "longer"], runs / "v1", variants={"longer": "long"})
    curves = pd.read_csv(runs / "v1" / "curves.csv")
    assert set(zip(curves["algo"], curves["seed"], strict=True)) == {
        ("random", 0), ("random", 1), ("random-long", 5)
    }  # fmt: skip
    meta = json.loads((runs / "v1" / "meta.json").read_text())
    assert meta["config_mismatches"] == [] and meta["variants"] == {"longer": "long"}
    assert set(meta["resolved_configs"]) == {"random__pendulum", "random-long__pendulum"}
    assert set(pd.read_csv(runs / "v1" / "trials.csv")["algo"]) == {"random", "random-long"}
    assert "| pendulum | random-long | 1† |" in (runs / "v1" / "summary.md").read_text()


def test_cli_variant_needs_run_equals_name(cli, runs):
    bad = cli("plots", "a,again", "--results", str(runs), "--variant", "again")
    assert bad.returncode == 2 and "write RUN=NAME" in bad.stderr
    ok = cli("plots", "a,again", "--results", str(runs), "--out", "v2", "--variant", "again=x")
    assert ok.returncode == 0, ok.stderr
    assert "random-x" in set(pd.read_csv(runs / "v2" / "curves.csv")["algo"])


def test_cli_window_writes_a_window_table(cli, runs):
    bad = cli("plots", "a", "--results", str(runs), "--window", "200:100")
    assert bad.returncode == 2 and "0 <= LOW < HIGH" in bad.stderr
    ok = cli("plots", "a", "--results", str(runs), "--window", "0:200")
    assert ok.returncode == 0, ok.stderr
    table = (runs / "a" / "summary_0-200.md").read_text()
    assert "(0, 200]" in table and "| pendulum | random | 2† | (0, 200] |" in table
