"""The command line and the orchestrator end to end: bad input, Ray grid, failures, resume."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark import run as runmod
from benchmark.driver import run_trial
from benchmark.suites import GridRequest, expand, parse_set
from benchmark.trial import execute, read_status, trial_name


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--algos", "sacc", "--envs", "pendulum"],
            ["unknown algorithm 'sacc'", "Did you mean 'sac'", "random"],
        ),
        (
            ["--algos", "sac", "--envs", "pendullum"],
            ["unknown task 'pendullum'", "Did you mean 'pendulum'"],
        ),
        (
            ["--algos", "sac", "--envs", "pendulum", "--set", "sac.lrr=0.1"],
            ["unknown hyperparameter 'lrr'", "Valid keys"],
        ),
        (
            ["--algos", "sac", "--envs", "pendulum", "--set", "sac.batch_size=big"],
            ["'batch_size'", "must be"],
        ),
        (["--algos", "lqr", "--envs", "hopper"], ["'lqr' needs linearization", "hopper"]),
        (["--algos", "sac", "--envs", "cartpole"], ["continuous_actions", "cartpole"]),
        (["--suite", "nosuch"], ["unknown suite 'nosuch'", "quick"]),
        (["--steps", "0"], ["STEPS (--steps) must be a positive integer", "got '0'"]),
        (
            ["--algos", "sac", "--envs", "pendulum", "--set", "sac.lr=-1"],
            ["hyperparameter 'lr' of SACConfig (sac on pendulum) must be > 0, got -1.0"],
        ),
        (
            ["--algos", "random", "--envs", "pendulum", "--set", "sac.lr=0.001"],
            ["names algorithm 'sac', which is not in this grid (random)", "ALGOS"],
        ),
    ],
)
def test_bad_input_fails_before_ray(cli, tmp_path, args, expected):
    res = cli("run", "--results", str(tmp_path), *args, no_ray=True, timeout=120)
    assert res.returncode == 2, res.stderr
    for text in expected:
        assert text in res.stderr
    assert not any(tmp_path.iterdir()), "nothing is written for a rejected run"


def test_run_folder_never_overwritten(tmp_path):
    req = GridRequest(algos=["random"], tasks=["pendulum"], seeds=1, steps=10)
    runmod.plan(req, tmp_path, "r1")
    with pytest.raises(runmod.RunExistsError, match="RESUME=r1"):
        runmod.plan(req, tmp_path, "r1")


def test_ray_grid_end_to_end_with_failures(cli, tmp_path):
    """A tiny grid through Ray Tune: curves, plots, tables; a NaN and a crashing trial are recorded
    as failed while the rest of the grid finishes."""
    res = cli(
        "run",
        "--results", str(tmp_path),
        "--run-id", "e2e",
        "--algos", "random,lqr,diverging,crashing",
        "--envs", "inverted_pendulum",
        "--seeds", "2",
        "--steps", "300",
        "--eval-every", "100",
        "--eval-episodes", "1",
        "--num-cpus", "2",
    )  # fmt: skip
    run_dir = tmp_path / "e2e"
    assert res.returncode == 3, res.stdout + res.stderr  # 3 = some trials failed
    trials = pd.read_csv(run_dir / "trials.csv")
    status = {(r.algo, r.seed): r.status for r in trials.itertuples()}
    assert status == {
        **{(a, s): "done" for a in ("random", "lqr") for s in (0, 1)},
        **{(a, s): "failed" for a in ("diverging", "crashing") for s in (0, 1)},
    }
    errors = dict(zip(trials["algo"], trials["error"], strict=False))
    assert "TrialDiverged" in errors["diverging"] and "boom" in errors["crashing"]

    curves = pd.read_csv(run_dir / "curves.csv")
    assert list(curves.columns) == [
        "run_id",
        "algo",
        "env",
        "seed",
        "env_step",
        "wallclock_s",
        "metric",
        "value",
    ]
    ev = curves[(curves.metric == "eval_return") & curves.algo.isin(["random", "lqr"])]
    assert sorted(ev.env_step.unique()) == [0, 100, 200, 300]
    assert ev.groupby(["algo", "seed"]).size().eq(4).all()
    for name in (
        "plots/inverted_pendulum.png",
        "plots/all_tasks.png",
        "summary.md",
        "summary.tex",
        "meta.json",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    meta = json.loads((run_dir / "meta.json").read_text())
    assert {"git", "packages", "hardware", "resolved_configs"} <= set(meta)
    assert "lqr" in (run_dir / "summary.md").read_text()
    # plots re-render from stored curves, without Ray
    (run_dir / "plots" / "all_tasks.png").unlink()
    res = cli("plots", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert (run_dir / "plots" / "all_tasks.png").stat().st_size > 0


class _Interrupt(Exception):
    pass


def test_resume_skips_finished_and_continues_interrupted(tmp_path):
    req = GridRequest(
        algos=["random"], tasks=["pendulum"], seeds=2, steps=1000, eval_every=200, eval_episodes=1
    )
    run_dir, specs = runmod.plan(req, tmp_path, "res")
    done_spec, cut_spec = specs
    execute(done_spec, run_dir / "trials" / trial_name(done_spec))
    done_curve = run_dir / "trials" / trial_name(done_spec) / "curve.csv"
    stamp = done_curve.stat().st_mtime_ns

    # interrupt the second trial at its evaluation at step 600 (checkpoints exist from step 400 on)
    def stop(new, rows):
        if any(r["metric"] == "eval_return" and r["env_step"] == 600 for r in new):
            raise _Interrupt

    cut_dir = run_dir / "trials" / trial_name(cut_spec)
    cut_dir.mkdir(parents=True)
    with pytest.raises(_Interrupt):
        run_trial(cut_spec, trial_dir=cut_dir, report=stop)
    assert (cut_dir / "checkpoint.pt").exists()

    assert runmod.pending(run_dir) == [cut_spec]
    runmod.execute_all(run_dir, runmod.pending(run_dir), use_ray=False)
    assert done_curve.stat().st_mtime_ns == stamp, "a finished trial was rerun"
    assert read_status(cut_dir)["status"] == "done"
    assert not (cut_dir / "checkpoint.pt").exists()

    # the resumed curve equals an uninterrupted run of the same trial
    fresh = pd.DataFrame(run_trial(cut_spec))
    resumed = pd.read_csv(cut_dir / "curve.csv")
    key = ["env_step", "metric"]
    keep = ~fresh.metric.isin(["steps_per_s"])
    a = fresh[keep].sort_values(key).reset_index(drop=True)
    b = resumed[~resumed.metric.isin(["steps_per_s"])].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[*key, "value"]], b[[*key, "value"]], check_dtype=False)


def _in_tree_algorithms() -> set[str]:
    """Registered plugins of this repository (not ``MBRL_BENCH_PLUGINS`` ones)."""
    from algorithms import ALGORITHMS

    return {n for n in ALGORITHMS.names() if ALGORITHMS[n].startswith("algorithms.")}


def test_quick_suite_is_valid():
    """The default suite runs every registered plugin, on 3 seeds unless the ``seeds:`` line of
    its entry in ``quick.yaml`` says why not (a comment on that line)."""
    from benchmark.suites import SUITES_DIR

    specs = expand(GridRequest(suite="quick"))
    missing = _in_tree_algorithms() - {s.algo for s in specs}
    assert not missing, f"add {sorted(missing)} to benchmark/suites/quick.yaml (15-minute budget)"
    seeds: dict[tuple[str, str], set[int]] = {}
    for s in specs:
        seeds.setdefault((s.algo, s.task), set()).add(s.seed)
    lines = (SUITES_DIR / "quick.yaml").read_text().splitlines()
    for (algo, task), got in sorted(seeds.items()):
        if len(got) >= 3:
            continue
        start = lines.index(f"  {algo}:")
        end = next(
            (i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")),
            len(lines),
        )
        said = [
            line
            for line in lines[start + 1 : end]
            if line.strip().startswith("seeds:") and task in line and "#" in line
        ]
        assert said, f"quick.yaml: {algo} on {task} runs {len(got)} seed(s); say why next to it"


def test_quick_suite_fits_in_15_minutes():
    """The default suite's plan, from the measured cost table, on the 2-core reference machine
    kind (two trials side by side; ``costs.REFERENCE_KIND``, whatever machine runs this test)
    plus a minute for Ray and the plots, leaves 20% of 15 minutes."""
    from benchmark import costs

    table = costs.load(kind=costs.REFERENCE_KIND)
    specs = expand(GridRequest(suite="quick"))
    seconds = [costs.estimate(s, table) for s in specs]
    pairs = zip(specs, seconds, strict=True)
    unmeasured = sorted({(s.algo, s.task) for s, t in pairs if t is None})
    assert not unmeasured, (
        f"no cost row for {unmeasured}: run the quick suite and `make costs RUN=<its run-id>`"
    )
    wall = costs.makespan([t for t in seconds if t is not None], slots=2) + 60.0
    assert wall <= 0.8 * 15 * 60, f"quick suite estimated at {wall / 60:.1f} min on 2 cores"


def test_standard_suite_is_valid():
    """The former default grid: every plugin but iCEM on 3 seeds at converged budgets."""
    specs = expand(GridRequest(suite="standard"))
    assert {s.algo for s in specs} == _in_tree_algorithms() - {"icem"}
    assert {s.seed for s in specs} == {0, 1, 2}
    assert len(specs) == 93  # muzero on Acrobot since the reanalysis entry


def test_suite_per_algorithm_seeds(tmp_path):
    """``algos.<algo>.seeds.<task>`` sets that pair's seeds only; ``SEEDS=`` still wins."""
    from algorithms.api import ConfigError

    path = tmp_path / "s.yaml"
    path.write_text(
        "seeds: 3\ntasks: {pendulum: {steps: 1000}}\nalgos:\n  sac:\n"
        "    seeds: {pendulum: 1}\ngrid:\n  - [[random, sac], [pendulum]]\n"
    )
    by_algo: dict[str, list[int]] = {}
    for s in expand(GridRequest(suite=str(path))):
        by_algo.setdefault(s.algo, []).append(s.seed)
    assert by_algo == {"random": [0, 1, 2], "sac": [0]}
    specs = expand(GridRequest(suite=str(path), seeds="3-4"))
    assert sorted((s.algo, s.seed) for s in specs) == [
        ("random", 3),
        ("random", 4),
        ("sac", 3),
        ("sac", 4),
    ]
    path.write_text(path.read_text().replace("{pendulum: 1}", "{pendulum: none}"))
    with pytest.raises(ConfigError, match=r"algos\.sac\.seeds\.pendulum must be"):
        expand(GridRequest(suite=str(path)))


def test_paper_suite_is_valid():
    assert expand(GridRequest(suite="paper"))


def test_suite_per_algorithm_schedule_and_unknown_keys(tmp_path):
    from algorithms.api import ConfigError

    path = tmp_path / "s.yaml"
    path.write_text(
        "seeds: 1\neval_every: 500\neval_episodes: 3\ntasks: {pendulum: {steps: 1000}}\n"
        "algos:\n  rs:\n    eval_episodes: {pendulum: 1}\n    eval_every: {pendulum: 250}\n"
        "grid:\n  - [[random, rs], [pendulum]]\n"
    )
    specs = {s.algo: s for s in expand(GridRequest(suite=str(path)))}
    assert (specs["rs"].eval_episodes, specs["rs"].eval_every) == (1, 250)
    assert (specs["random"].eval_episodes, specs["random"].eval_every) == (3, 500)
    path.write_text("algos:\n  rs:\n    horizn: {population: 3}\ngrid: []\n")
    with pytest.raises(ConfigError, match="unknown key 'horizn'"):
        expand(GridRequest(suite=str(path)))


def test_bf16_auto_follows_the_device():
    """``bf16: auto`` in a suite (or a SET) becomes a bool per machine: on where bf16 runs
    natively, fp32 where it would be emulated; other keys and explicit values stay."""
    from benchmark.suites import fast_bf16, resolve_auto_bf16

    got = resolve_auto_bf16({"sac.bf16": "auto", "model.bf16": True, "note": "auto"}, "cpu")
    assert got == {"sac.bf16": fast_bf16("cpu"), "model.bf16": True, "note": "auto"}
    assert isinstance(got["sac.bf16"], bool)
    (spec,) = [s for s in expand(GridRequest(suite="quick", algos=["mbpo"])) if s.seed == 0]
    assert spec.overrides["sac.bf16"] is fast_bf16("auto")
    assert spec.overrides["model.bf16"] is fast_bf16("auto")
    req = GridRequest(suite="quick", algos=["sac"], overrides=parse_set(["sac.bf16=auto"]))
    assert all(s.overrides["bf16"] is fast_bf16("auto") for s in expand(req))
