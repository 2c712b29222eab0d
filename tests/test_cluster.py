"""``RAY_ADDRESS``: the grid on a multi-node Ray cluster (a head and a worker node, all on
127.0.0.1), a worker node killed mid-run, then ``RESUME=`` on a new worker node (docs/cluster.md).

Every Ray process here belongs to the test's own ``Cluster`` (its own temp dir) and is stopped by
the fixture, even when the test fails; ``ray stop`` is never used (it would stop other people's
Ray on this machine)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from benchmark import run as runmod
from benchmark.driver import run_trial
from benchmark.trial import read_checkpoint, read_status, trial_name

LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray binds every node and driver to 127.0.0.1


@pytest.fixture
def cluster(monkeypatch) -> Iterator:
    """A Ray head node with 1 CPU on 127.0.0.1 (this workplace allows only loopback traffic)."""
    monkeypatch.setenv(LOOPBACK, "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # if ray was imported before
    temp = tempfile.mkdtemp(prefix="mbrl-cl-", dir="/tmp")  # short: Unix socket paths are limited
    head = {"num_cpus": 1, "include_dashboard": False, "temp_dir": temp}
    c = Cluster(initialize_head=True, head_node_args=head)
    try:
        assert c.address.startswith("127.0.0.1:"), c.address
        yield c
    finally:
        import ray

        ray.shutdown()
        c.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; driver log:\n{log.read_text()[-3000:]}")


def _values(rows) -> pd.DataFrame:
    """A curve without wall-clock columns and metrics, in a fixed order."""
    df = pd.DataFrame(rows)
    df = df[df.metric != "steps_per_s"].sort_values(["env_step", "metric"], kind="stable")
    return df[["env_step", "metric", "value"]].reset_index(drop=True)


GRID = ["--algos", "sac", "--envs", "pendulum", "--seeds", "3", "--steps", "1500"]
GRID += ["--eval-every", "500", "--eval-episodes", "1", "--checkpoint-every", "0"]
GRID += ["--progress-every", "5", "--set", "sac.initial_random_steps=64", "sac.batch_size=32"]


@pytest.mark.slow
@pytest.mark.ci
def test_cluster_node_death_then_resume(cluster, cli_env, spawn_cli, tmp_path, monkeypatch):
    from benchmark import tune_adapter

    worker = cluster.add_node(num_cpus=1)
    env = {**cli_env, LOOPBACK: "0", "RAY_ADDRESS": cluster.address}
    run_dir, log = tmp_path / "cl", tmp_path / "driver.log"
    trials = {seed: run_dir / "trials" / f"sac__pendulum__s{seed}" for seed in range(3)}

    def on_worker() -> Path | None:
        for tdir in trials.values():
            node = read_status(tdir).get("node", {})
            if (
                node.get("ray_node_id") == worker.node_id
                and (read_checkpoint(tdir) or {}).get("step", 0) >= 200
            ):
                return tdir
        return None

    proc = spawn_cli("run", "--results", str(tmp_path), "--run-id", "cl", *GRID, env=env, log=log)
    try:
        _wait_for(lambda: on_worker() is not None, 300, "a checkpoint on the worker node", log)
        lost = on_worker()
        assert read_status(lost)["status"] == "running"
        cluster.remove_node(worker, allow_graceful=False)  # the node dies under its trial
        proc.wait(timeout=300)
    finally:
        _stop(proc)
    out = log.read_text()
    assert proc.returncode == 130, out
    assert "each sees" in out and "2 node(s)" in out, "the shared results folder was checked"
    assert "INTERRUPTED" in out and "Resume with: make benchmark RESUME=cl" in out
    status = {tdir: read_status(tdir) for tdir in trials.values()}
    assert status[lost]["status"] == "interrupted", status[lost]
    assert "died" in status[lost]["error"] and status[lost]["checkpoint_step"] >= 200
    head_id = cluster.head_node.node_id
    others = [t for t in trials.values() if t != lost]
    assert all(status[t]["status"] == "done" for t in others), "the rest of the grid went on"
    assert all(status[t]["node"]["ray_node_id"] == head_id for t in others)
    assert status[lost]["node"]["ip"] == "127.0.0.1" and status[lost]["node"]["host"]
    table = pd.read_csv(run_dir / "trials.csv")
    assert sorted(table.status) == ["done", "done", "interrupted"]
    stamps = {t: (t / "curve.csv").stat().st_mtime_ns for t in others}
    cut = status[lost]["checkpoint_step"]

    new = cluster.add_node(num_cpus=1)
    log = tmp_path / "resume.log"
    proc = spawn_cli("run", "--results", str(tmp_path), "--resume", "cl", env=env, log=log)
    try:
        proc.wait(timeout=300)
    finally:
        _stop(proc)
    out = log.read_text()
    assert proc.returncode == 0, out
    assert "resuming cl: 1 unfinished trial(s)" in out
    assert f"resuming at env step {cut} (checkpoint)" in out
    assert read_status(lost)["status"] == "done"
    assert read_status(lost)["node"]["ray_node_id"] in {head_id, new.node_id}
    assert all((t / "curve.csv").stat().st_mtime_ns == stamps[t] for t in others), "rerun"
    assert set(pd.read_csv(run_dir / "trials.csv").status) == {"done"}
    # the resumed curve and a head node's curve equal --no-ray runs of the same specs
    specs = {trial_name(s): s for s in runmod.planned(run_dir)}
    for tdir in (lost, others[0]):
        got = pd.read_csv(tdir / "curve.csv").to_dict("records")
        want = run_trial(specs[tdir.name])
        pd.testing.assert_frame_equal(_values(got), _values(want), check_dtype=False)

    # the shared-results check asks every alive node (a task pinned to each) and names the fix
    import ray

    ray.init(address=cluster.address, log_to_driver=False)
    missing, n = tune_adapter.nodes_missing(run_dir / "absent", "token")
    assert n == 2 and {m["ray_node_id"] for m in missing} == {head_id, new.node_id}
    assert tune_adapter.check_shared_results(run_dir) == 2
    assert not list(run_dir.glob(".cluster-check-*")), "the marker is removed"
    monkeypatch.setattr(
        tune_adapter, "nodes_missing", lambda *a, **k: ([{"host": "b", "ip": "10.0.0.2"}], 2)
    )
    with pytest.raises(tune_adapter.ClusterError, match=r"b \(10.0.0.2\) cannot see .*NFS"):
        tune_adapter.check_shared_results(run_dir)


def test_unreachable_ray_address_fails_in_seconds(cli, cli_env, tmp_path):
    """``ray.init`` retries a dead address for minutes: the run says so at once, exit 2."""
    with socket.socket() as sock:  # a free port: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**cli_env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    args = ["--results", str(tmp_path), "--run-id", "nocl", "--algos", "random"]
    args += ["--envs", "pendulum", "--seeds", "1", "--steps", "200"]
    t0 = time.time()
    res = cli("run", *args, env=env, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: no Ray cluster answers at RAY_ADDRESS=127.0.0.1:{port}")
    )
    assert "unset RAY_ADDRESS" in res.stderr and time.time() - t0 < 60
    assert not (tmp_path / "nocl" / "trials").exists(), "no trial started"
