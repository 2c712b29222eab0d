"""The run lifecycle: the plan and its estimates, the cost table, time-based checkpoints, progress,
and interruption (Ctrl-C with and without Ray, kill -9 of the driver) followed by RESUME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark import costs
from benchmark import run as runmod
from benchmark.__main__ import main
from benchmark.driver import TrialSpec, run_trial
from benchmark.suites import GridRequest
from benchmark.trial import progress_line, read_checkpoint, trial_name

ROOT = Path(__file__).resolve().parents[1]


def _cost(**kw) -> costs.Cost:
    base = dict(
        algo="a",
        task="t",
        s_per_step=0.01,
        s_per_eval_step=0.002,
        eval_length=200.0,
        overhead_s=1.5,
        trials=3,
        source="test",
    )
    return costs.Cost(**{**base, **kw})


def test_estimate_and_makespan_arithmetic():
    spec = TrialSpec("a", "t", 0, total_steps=1000, eval_every=300, eval_episodes=2)
    table = {("a", "t"): _cost()}
    # evaluations at 0, 300, 600, 900 and the final one at 1000
    assert costs.n_evaluations(1000, 300) == 5
    assert costs.n_evaluations(1000, 1000) == 2
    assert costs.estimate(spec, table) == pytest.approx(1.5 + 1000 * 0.01 + 5 * 2 * 200 * 0.002)
    # resumed at step 700 with the next evaluation at 900: 300 steps, evaluations at 900 and 1000
    resumed = costs.estimate(spec, table, from_step=700, next_eval=900)
    assert resumed == pytest.approx(1.5 + 300 * 0.01 + 2 * 2 * 200 * 0.002)
    assert costs.estimate(TrialSpec("b", "t", 0, 10), table) is None
    no_eval = {("a", "t"): _cost(s_per_eval_step=None, eval_length=None)}
    assert costs.estimate(spec, no_eval) is None, "evaluation cost unknown"
    assert costs.estimate(TrialSpec("a", "t", 0, 100, eval_episodes=0), no_eval) == 2.5
    # greedy longest first: 5 | 4, 4+3 | 5+3, 7+3 -> 10
    assert costs.makespan([3, 5, 3, 4, 3], 2) == 10
    assert costs.makespan([3, 5, 3, 4, 3], 1) == 18
    assert costs.makespan([3, 5], 8) == 5


def test_plan_table_counts_unestimated_and_resume_points():
    specs = [TrialSpec("a", "t", s, 1000, eval_every=1000, eval_episodes=1) for s in (0, 1, 2)]
    specs += [TrialSpec("b", "t", s, 500) for s in (3, 4)]
    table = {("a", "t"): _cost(s_per_step=0.06, s_per_eval_step=0.0, overhead_s=0.0)}
    text = costs.format_plan(specs, slots=2, slots_note="2 CPUs", table=table)
    lines = text.splitlines()
    assert lines[0].split() == [
        "algorithm", "task", "seeds", "budget", "eval", "every", "eval", "eps", "min/trial"
    ]  # fmt: skip
    assert lines[2].split() == ["a", "t", "0-2", "1000", "1000", "1", "1.0"]
    assert lines[3].split() == ["b", "t", "3-4", "500", "1000", "5", "?"]
    # three 60 s trials on two slots: 2 minutes; the two unmeasured ones are counted apart
    assert "estimated wall time 2.0 min on 2 parallel slot(s)" in text
    assert "2 trial(s) unestimated" in text
    resume = {specs[1].label: costs.Resume(step=500, next_eval=1000)}
    text = costs.format_plan(specs[:3], slots=1, slots_note="", table=table, resume=resume)
    rows = [ln.split() for ln in text.splitlines()[2:5]]
    assert ["a", "t", "0,2", "1000", "start", "1000", "1", "1.0"] in rows
    assert ["a", "t", "1", "1000", "step", "500", "1000", "1", "0.5"] in rows
    assert "estimated wall time 2.5 min on 1" in text


def test_costs_are_kept_per_machine_kind(tmp_path, monkeypatch):
    """Each kind keeps its own row of a pair; the plan takes this machine's kind's, else the
    reference kind's, and says which trials it estimated from another kind's costs."""
    path = tmp_path / "costs.csv"
    monkeypatch.setattr(costs, "machine_kind", lambda: "AVX2")
    costs.save(
        {
            ("a", "t", "AVX2"): _cost(s_per_step=0.12, s_per_eval_step=0.0, kind="AVX2"),
            ("a", "t", costs.REFERENCE_KIND): _cost(s_per_step=0.06, s_per_eval_step=0.0),
            ("b", "t", costs.REFERENCE_KIND): _cost(algo="b", s_per_step=0.06),
            ("b", "t", "NEON"): _cost(algo="b", s_per_step=1.0, kind="NEON"),
            ("c", "t", "NEON"): _cost(algo="c", s_per_step=1.0, kind="NEON"),
        },
        path,
    )
    assert len(costs.load_all(path)) == 5
    table = costs.load(path)
    specs = [TrialSpec(x, "t", 0, 500, eval_every=500, eval_episodes=0) for x in "abc"]
    assert [costs.pick(s, table).kind for s in specs] == ["AVX2", costs.REFERENCE_KIND, "NEON"]
    assert costs.pick(specs[0], costs.load(path, kind=costs.REFERENCE_KIND)).s_per_step == 0.06
    text = costs.format_plan(specs, slots=1, slots_note="", table=table)
    assert "1 trial(s) estimated from costs measured on AVX512+bf16 machines" in text
    assert "1 trial(s) estimated from costs measured on NEON machines (this one: AVX2" in text
    assert "other settings" not in text


def test_costs_are_kept_per_settings(tmp_path, monkeypatch):
    """One pair keeps a row per configuration (suite entry and SET, not the bf16 switches): a
    trial takes its own settings' row, of another kind if need be, then one of unrecorded
    settings, then one of other settings, and the plan counts the last."""
    path = tmp_path / "costs.csv"
    monkeypatch.setattr(costs, "machine_kind", lambda: "AVX2")
    quick, standard = {"horizon": 5}, {"horizon": 30, "model.bf16": True}
    assert costs.settings_digest(standard) == costs.settings_digest({"horizon": 30})
    assert costs.settings_digest(quick) != costs.settings_digest(standard)
    q, st = costs.settings_digest(quick), costs.settings_digest(standard)
    costs.save(
        {
            ("a", "t", "AVX2", q): _cost(s_per_step=0.01, kind="AVX2", settings=q),
            ("a", "t", costs.REFERENCE_KIND, st): _cost(s_per_step=0.05, settings=st),
            ("b", "t", "AVX2", q): _cost(algo="b", s_per_step=0.01, kind="AVX2", settings=q),
            ("b", "t", "AVX2", ""): _cost(algo="b", s_per_step=0.02, kind="AVX2"),
        },
        path,
    )
    table = costs.load(path)
    assert len(table[("a", "t")]) == 2

    def spec(algo: str, overrides: dict) -> TrialSpec:
        return TrialSpec(algo, "t", 0, 100, eval_episodes=0, overrides=overrides)

    assert costs.pick(spec("a", quick), table).s_per_step == 0.01
    assert costs.pick(spec("a", {**standard, "model.bf16": False}), table).s_per_step == 0.05
    assert costs.pick(spec("b", standard), table).s_per_step == 0.02, "unrecorded before other"
    assert costs.pick(spec("a", {"horizon": 15}), table).settings in (q, st)
    text = costs.format_plan([spec("a", {"horizon": 15})], slots=1, slots_note="", table=table)
    assert "1 trial(s) estimated from costs measured with other settings" in text
    text = costs.format_plan([spec("a", standard)], slots=1, slots_note="", table=table)
    assert "other settings" not in text and "on AVX512+bf16 machines" in text


def test_dry_run_prints_plan_without_folder_or_ray(cli, tmp_path):
    args = ["run", "--results", str(tmp_path), "--run-id", "dry", "--dry-run", "--num-cpus", "4"]
    args += ["--algos", "sac,ilqg", "--envs", "pendulum", "--seeds", "3", "--steps", "2000"]
    res = cli(*args, no_ray=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert not any(tmp_path.iterdir()), "a dry run writes nothing"
    out = res.stdout
    assert "algorithm" in out and "min/trial" in out
    sac = next(ln for ln in out.splitlines() if ln.startswith("sac "))
    assert sac.split()[:4] == ["sac", "pendulum", "0-2", "2000"]
    assert "on 4 parallel slot(s)" in out and "dry run" in out
    if ("ilqg", "pendulum") not in costs.load():
        assert "3 trial(s) unestimated" in out


def _tiny_run(tmp_path: Path, run_id: str, **req) -> Path:
    req = {"algos": ["random"], "tasks": ["pendulum"], "seeds": 2, "steps": 600, **req}
    run_dir, specs = runmod.plan(
        GridRequest(eval_every=200, eval_episodes=1, **req), tmp_path, run_id
    )
    runmod.execute_all(run_dir, specs, use_ray=False)
    assert runmod.finish(run_dir) == 0
    return run_dir


def test_costs_refresh_from_a_finished_run(tmp_path, monkeypatch, capsys):
    run_dir = _tiny_run(tmp_path, "measured")
    table_path = tmp_path / "costs.csv"
    table_path.write_text(
        "algo,task,s_per_step,s_per_eval_step,eval_length,overhead_s,trials,source\n"
        "random,pendulum,9,9,9,9,1,old\nsac,hopper,1,1,100,1,1,kept\n"
    )
    monkeypatch.setattr(costs, "COSTS", table_path)
    assert main(["costs", str(run_dir)]) == 0
    assert "updated 1 row(s)" in capsys.readouterr().out
    table = costs.load()
    assert table[("sac", "hopper")][0].source == "kept", "rows of other pairs are kept"
    spec = runmod.planned(run_dir)[0]
    old, row = sorted(table[("random", "pendulum")], key=lambda c: c.settings)
    assert old.source == "old" and not old.settings, "a row of other settings is kept"
    assert costs.pick(spec, table) == row
    assert row.trials == 2 and row.source.startswith("measured@")
    assert row.kind == costs.machine_kind(), "the kind the run's meta.json records"
    assert row.settings == costs.settings_digest(spec.overrides)
    assert row.eval_length == 200.0 and row.s_per_step > 0 and row.s_per_eval_step > 0
    # the estimate of the measured schedule reproduces the measured mean trial time
    trials = pd.read_csv(run_dir / "trials.csv")
    assert costs.estimate(spec, table) == pytest.approx(trials.seconds.mean(), rel=1e-3)
    assert main(["costs", str(tmp_path / "nosuch")]) == 2


class _Stop(Exception):
    pass


class _StopAt(dict):
    """A progress dict that interrupts the trial when it reaches env step ``at``."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if key == "step" and value == self.at:
            raise _Stop


def _values(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df = df[df.metric != "steps_per_s"].sort_values(["env_step", "metric"], kind="stable")
    return df[["env_step", "metric", "value"]].reset_index(drop=True)


SAC = TrialSpec(
    "sac", "pendulum", 0, total_steps=600, eval_every=600, eval_episodes=1,
    overrides={"initial_random_steps": 100, "batch_size": 32},
)  # fmt: skip


def test_checkpoint_only_after_evaluations_within_checkpoint_every_s(tmp_path):
    """Evaluations at 0 and at the budget only: within ``checkpoint_every_s`` of trial time, the
    one checkpoint is the first episode end after the step-0 evaluation (step 200)."""
    with pytest.raises(_Stop):
        run_trial(SAC, trial_dir=tmp_path, checkpoint_every_s=600.0, progress=_StopAt(501))
    assert read_checkpoint(tmp_path)["step"] == 200


def test_time_based_checkpoint_and_exact_resume(tmp_path):
    """Once ``checkpoint_every_s`` has passed, every episode end saves (here: 0 s, each one), and
    the resumed trial's curve equals an uninterrupted run's."""
    with pytest.raises(_Stop):
        run_trial(SAC, trial_dir=tmp_path, checkpoint_every_s=0.0, progress=_StopAt(501))
    assert read_checkpoint(tmp_path)["step"] == 400
    resumed = run_trial(SAC, trial_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "checkpoint.json").exists()
    pd.testing.assert_frame_equal(_values(resumed), _values(run_trial(SAC)))


def test_progress_line_rate_and_estimate():
    spec = TrialSpec("pets", "pendulum", 1, total_steps=1000)
    now = time.perf_counter()
    state = {"step": 0, "start_step": 0, "start_time": now - 10.4, "t0": now - 10.4}
    line = progress_line(spec, state, estimate_s=71.0)  # 60.6 s left (a few ms pass: 0:60)
    assert line.startswith("[pets|pendulum|s1] step 0/1000 (0%) eval - train -")
    assert "elapsed 0:10 ETA 1:00" in line  # from the cost table before any step
    state.update(step=400, start_step=200, eval_return=-660.94, train_return=-1024.2)
    line = progress_line(spec, state, estimate_s=None)
    # 200 steps in 10.4 s: 600 to go at the trial's own rate
    assert "step 400/1000 (40%) eval -660.9 train -1024.2 elapsed 0:10 ETA 0:31" in line
    # both known: the larger (the table's 60.6 s here; the rate's 31.2 s where the table is short)
    assert "ETA 1:00" in progress_line(spec, state, estimate_s=71.0)
    assert "ETA 0:31" in progress_line(spec, state, estimate_s=20.0)


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _step_of(trial_dir: Path) -> int:
    ckpt = read_checkpoint(trial_dir)
    return ckpt["step"] if ckpt else -1


# SAC with 64-unit networks and batch 64 (~4 ms per update on one core against ~20 for its
# defaults): 1400 updates leave seconds between the checkpoint a test waits for and the trial's end
GRID = ["--algos", "random,sac", "--envs", "pendulum", "--set", "sac.initial_random_steps=200"]
GRID += ["sac.batch_size=64", "sac.hidden=64", "--steps", "1600", "--eval-every", "400"]
GRID += ["--eval-episodes", "1", "--checkpoint-every", "0"]


def test_ctrl_c_without_ray_reports_truthfully(cli, spawn_cli, tmp_path):
    args = ["--results", str(tmp_path), "--run-id", "cut", "--no-ray", "--seeds", "2", *GRID]
    proc = spawn_cli("run", *args)
    sac0 = tmp_path / "cut" / "trials" / "sac__pendulum__s0"
    try:
        _wait_for(lambda: _step_of(sac0) >= 200, 120, "the first sac trial to checkpoint")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "INTERRUPTED" in err and "Resume with: make benchmark RESUME=cut" in err
    assert "Tuner.restore" not in out + err and "Traceback" not in err
    run_dir = tmp_path / "cut"
    trials = pd.read_csv(run_dir / "trials.csv")
    status = {(r.algo, r.seed): r.status for r in trials.itertuples()}
    # longest first: the sac trials run before the random ones
    assert status == {
        ("sac", 0): "interrupted",
        ("sac", 1): "not started",
        ("random", 0): "not started",
        ("random", 1): "not started",
    }
    assert not (run_dir / "summary.md").exists() and not (run_dir / "plots").exists()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert "interrupted" in meta and "finished" not in meta
    assert (run_dir / "curves.csv").exists()
    # the resume plan says where the interrupted trial picks up
    res = cli(
        "run", "--results", str(tmp_path), "--resume", "cut", "--dry-run", "--no-ray", timeout=120
    )
    assert res.returncode == 0, res.stderr
    row = next(
        ln.split() for ln in res.stdout.splitlines() if ln.split()[:3] == ["sac", "pendulum", "0"]
    )
    assert row[4:6] == ["step", str(_step_of(sac0))]


def _ray_processes(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "ray_processes.json").read_text())["processes"]


def _alive(ident: dict) -> bool:
    from benchmark.tune_adapter import _alive as alive
    from benchmark.tune_adapter import _psutil

    return alive(_psutil(), ident) is not None


def _done(trial_dir: Path) -> bool:
    status = trial_dir / "status.json"
    return status.exists() and json.loads(status.read_text())["status"] == "done"


def test_ray_ctrl_c_then_kill_9_then_resume(cli, spawn_cli, tmp_path):
    """Through Ray: Ctrl-C (SIGINT to the driver's process group, as a terminal sends it) reports
    the interruption; a RESUME killed with kill -9 leaves Ray agents behind, which the next RESUME
    stops; it keeps the finished trial, and the resumed curve equals an uninterrupted one."""
    results = ["--results", str(tmp_path), "--num-cpus", "2"]
    run_dir = tmp_path / "k9"
    rnd = run_dir / "trials" / "random__pendulum__s0"
    sac = run_dir / "trials" / "sac__pendulum__s0"

    proc = spawn_cli("run", *results, "--run-id", "k9", "--seeds", "1", *GRID)
    try:
        _wait_for(lambda: _done(rnd) and _step_of(sac) >= 200, 240, "random done, sac saved")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "Resume with: make benchmark RESUME=k9" in err
    assert "Tuner.restore" not in out + err and "Traceback" not in err
    trials = pd.read_csv(run_dir / "trials.csv")
    assert dict(zip(trials.algo, trials.status, strict=True)) == {
        "random": "done",
        "sac": "interrupted",
    }
    assert not (run_dir / "summary.md").exists() and not (run_dir / "plots").exists()
    stamp = (rnd / "curve.csv").stat().st_mtime_ns

    cut = _step_of(sac)
    proc = spawn_cli("run", *results, "--resume", "k9")
    try:
        _wait_for(lambda: _step_of(sac) > cut, 240, "the resumed sac trial to save again")
        first = _ray_processes(run_dir)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    at = _step_of(sac)
    time.sleep(1)
    assert [p for p in first if _alive(p)], "the issue's leftovers (Ray agents) are reproduced"

    res = cli("run", *results, "--resume", "k9", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming k9: 1 unfinished trial(s)" in res.stdout
    assert f"step {at}" in res.stdout and "stopped" in res.stdout
    assert not [p for p in first if _alive(p)], "Ray processes of the killed driver remain"
    assert not (run_dir / "ray_processes.json").exists()
    assert (rnd / "curve.csv").stat().st_mtime_ns == stamp, "a finished trial was rerun"
    trials = pd.read_csv(run_dir / "trials.csv")
    assert set(trials.status) == {"done"} and len(trials) == 2
    spec = next(s for s in runmod.planned(run_dir) if s.algo == "sac")
    assert trial_name(spec) == sac.name
    resumed = pd.read_csv(sac / "curve.csv").to_dict("records")
    pd.testing.assert_frame_equal(_values(resumed), _values(run_trial(spec)), check_dtype=False)
    assert (run_dir / "summary.md").exists()


def test_ray_workers_ignore_ctrl_c(python, cli_env):
    """A terminal's Ctrl-C reaches Ray's workers too; with the run's ``runtime_env`` they ignore it
    (the driver shuts them down), so no worker prints a stray ``KeyboardInterrupt`` traceback."""
    code = (
        "import os, signal, ray; from benchmark.tune_adapter import WORKER_ENV\n"
        "ray.init(address='local', num_cpus=1, include_dashboard=False, runtime_env=WORKER_ENV)\n"
        "f = ray.remote(lambda: (os.getpid(), signal.getsignal(signal.SIGINT) == signal.SIG_IGN))\n"
        "pid, ignored = ray.get(f.remote())\n"
        "os.kill(pid, signal.SIGINT)\n"
        "assert ray.get(f.remote()) == (pid, True), 'the worker did not survive Ctrl-C'\n"
        "print('ignored', ignored)\n"
        "ray.shutdown()\n"
    )
    res = subprocess.run(
        [python, "-c", code], env=cli_env, capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ignored True" in res.stdout
    assert "Traceback" not in res.stderr and "KeyboardInterrupt" not in res.stderr, res.stderr


def test_make_benchmark_prints_the_scripts_exit_status(python, tmp_path):
    """GNU make exits 2 for any failing recipe: the recipe says what the script's status meant."""
    venv = Path(python).absolute().parent.parent  # not resolved: the venv, not the base python
    args = ["benchmark", "ALGOS=sacc", "ENVS=pendulum", f"ARGS=--results {tmp_path}"]
    res = subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "make benchmark: exit status 2: bad input, nothing was started" in res.stderr
