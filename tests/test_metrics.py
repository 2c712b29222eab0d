"""One value per (trial, env step, metric): the driver refuses a second one as it is emitted,
``collect`` refuses one in a run's trial curves, and no committed curve file holds one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from algorithms.random_policy import RandomPolicy
from benchmark import driver
from benchmark.collect import DuplicateRowsError, check_unique, collect
from benchmark.driver import DuplicateMetric, TrialSpec, run_trial
from benchmark.trial import execute, trial_name

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "results").glob("*/curves.csv"))
FINGERPRINTS = sorted((ROOT / "tests" / "fingerprints").glob("*.json"))


class Repeating(RandomPolicy):
    """Returns ``loss`` from two hooks: the plugin bug the driver must refuse."""

    name = "repeating"
    hooks: tuple[str, str] = ("update", "eval_metrics")

    def update(self):
        return {"loss": 1.0} if "update" in self.hooks else {}

    def on_episode_end(self):
        return {"loss": 2.0} if "on_episode_end" in self.hooks else {}

    def eval_metrics(self):
        return {"loss": 3.0} if "eval_metrics" in self.hooks else {}


@pytest.mark.parametrize(
    ("hooks", "step"),
    [
        (("update", "eval_metrics"), 100),  # both logged at the first evaluation after step 0
        (("on_episode_end", "eval_metrics"), 200),  # the episode ends at the final evaluation
    ],
)
def test_driver_refuses_a_second_value_for_a_step_and_metric(monkeypatch, hooks, step):
    plugin = type("Repeating", (Repeating,), {"hooks": hooks})
    real = driver.get_algorithm
    monkeypatch.setattr(driver, "get_algorithm", lambda n: plugin if n == "repeating" else real(n))
    spec = TrialSpec("repeating", "pendulum", 0, total_steps=200, eval_every=100, eval_episodes=0)
    with pytest.raises(
        DuplicateMetric, match=rf"s0: metric 'loss' emitted twice at env step {step} "
    ):
        run_trial(spec)


def test_collect_refuses_duplicate_rows(tmp_path):
    spec = TrialSpec("random", "pendulum", seed=0, total_steps=200, eval_every=100, eval_episodes=1)
    tdir = tmp_path / "run" / "trials" / trial_name(spec)
    execute(spec, tdir)
    collect(tmp_path / "run")  # a clean run collects
    curve = pd.read_csv(tdir / "curve.csv")
    row = curve[curve["metric"] == "eval_return"].iloc[[1]].assign(value=-1.0)
    pd.concat([curve, row]).to_csv(tdir / "curve.csv", index=False)
    (tmp_path / "run" / "curves.csv").unlink()
    with pytest.raises(
        DuplicateRowsError, match=r"random\|pendulum\|s0 metric 'eval_return' at env step 100"
    ):
        collect(tmp_path / "run")
    assert not (tmp_path / "run" / "curves.csv").exists()  # nothing written


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_curves_have_one_value_per_key(path):
    check_unique(pd.read_csv(path), where=str(path))


def test_there_are_committed_curves():
    assert COMMITTED


@pytest.mark.parametrize("path", FINGERPRINTS, ids=lambda p: p.stem)
def test_smoke_fingerprints_have_one_value_per_key(path):
    """Every plugin's stored smoke run (``tests/fingerprints``; the runs themselves go through the
    driver's check in ``test_fingerprints.py``)."""
    for kind in json.loads(path.read_text())["kinds"]:  # one row set per machine kind
        keys = [(step, metric) for step, metric, _ in kind["rows"]]
        assert len(keys) == len(set(keys)), (path.stem, kind["signature"])
