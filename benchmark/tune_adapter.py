"""The thin Ray Tune layer: one Tune trial per :class:`TrialSpec`, nothing else.

Each trial runs :func:`benchmark.trial.execute` in its own folder and forwards every evaluation to
``ray.tune.report`` (with ``env_step``, since ``training_iteration`` only counts reports).
Resuming is done one level up (``benchmark.run``): finished trials are dropped from the grid and
unfinished ones continue from their own ``checkpoint.pt``, so no Tune experiment state is needed.

Ctrl-C: Tune's own SIGINT handler (which ends with "Resume experiment with: Tuner.restore(...)",
not how this suite resumes) is disabled; the ``KeyboardInterrupt`` reaches ``benchmark.run``, which
reports the interruption after Ray is shut down here. A terminal's Ctrl-C reaches the whole process
group, Ray's workers too; they ignore it (:func:`ignore_sigint`, Ray's
``worker_process_setup_hook``), since a ``KeyboardInterrupt`` raised wherever a worker's main
thread happens to be (a weakref callback, Ray's own loop) only printed a stray traceback: the
driver's shutdown stops them, and their trials' last checkpoints stand.

kill -9 of the driver: local Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) and
idle workers outlive it, reparented to PID 1. Every local Ray process started for a run is listed
in ``results/<run>/ray_processes.json`` (pid and start time) while it runs; the next ``run`` or
``RESUME`` stops those of any run whose driver is gone (:func:`stop_leftover_ray`).

A Ray cluster (``RAY_ADDRESS``, docs/cluster.md): every node must see ``results/<run>/`` at the
same path (:func:`check_shared_results` fails before any trial starts otherwise); each trial
records the node it ran on in its ``status.json``, and a trial whose node died is recorded
``interrupted`` (not ``failed``), resumable with ``RESUME=`` from its checkpoint
(:func:`record_lost_trials`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.driver import Row, TrialSpec
from benchmark.trial import execute, read_checkpoint, read_status, trial_name, write_status


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``config = {"run_dir": str, "trial": asdict(TrialSpec)}``."""
    import ray
    from ray import tune

    spec = TrialSpec(**config["trial"])
    trial_dir = Path(config["run_dir"]) / "trials" / trial_name(spec)

    def on_report(new: list[Row]) -> None:
        latest = {r["metric"]: r["value"] for r in new}
        tune.report({"env_step": max(r["env_step"] for r in new), **latest})

    execute(
        spec,
        trial_dir,
        on_report=on_report,
        checkpoint_every_s=config.get("checkpoint_every_s", 120.0),
        progress_every_s=config.get("progress_every_s", 30.0),
        node={
            "ray_node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
        },
    )


class ClusterError(RuntimeError):
    """The Ray cluster cannot run this grid (e.g. a node does not see the results folder)."""


def check_reachable(address: str, *, timeout_s: float = 10.0) -> None:
    """Fail in seconds when ``RAY_ADDRESS`` (``host:port`` of the head's GCS) does not answer
    (``ray.init`` would retry for minutes). Other forms (``auto``, ``ray://...``) are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterError(
            f"no Ray cluster answers at RAY_ADDRESS={address} ({e}): start one (ray start --head, "
            "docs/cluster.md) or unset RAY_ADDRESS to run on local Ray"
        ) from e


def _sees_marker(marker: str, token: str) -> dict[str, Any]:
    """On one node: whether ``marker`` holds ``token`` (the driver's file, seen from here)."""
    import ray

    try:
        seen = Path(marker).read_text() == token
    except OSError:
        seen = False
    return {
        "ray_node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
        "seen": seen,
    }


def nodes_missing(
    marker: Path, token: str, *, timeout_s: float = 120.0
) -> tuple[list[dict[str, Any]], int]:
    """The alive Ray nodes on which ``marker`` does not hold ``token`` (a zero-CPU task pinned to
    each node, NodeAffinity not soft, reads it), and how many nodes were asked. Needs
    ``ray.init``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_sees_marker)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    refs = [
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(str(marker), token)
        for n in nodes
    ]
    try:
        seen = ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError as e:
        raise ClusterError(
            f"the results check did not answer within {timeout_s:.0f} s on {len(nodes)} Ray "
            "node(s): check that every node is up (ray status) and can import this repository"
        ) from e
    except ray.exceptions.RayError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ClusterError(
            f"a Ray node could not run the results check ({first}): every node needs this "
            "repository and its virtual environment at the same path (docs/cluster.md)"
        ) from e
    return [s for s in seen if not s["seen"]], len(nodes)


def check_shared_results(run_dir: Path) -> int:
    """Fail unless every alive Ray node sees ``run_dir`` at the same path (a shared filesystem):
    the driver writes a marker file there and each node must read it back. Returns the number of
    nodes checked."""
    marker = run_dir.resolve() / f".cluster-check-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    marker.write_text(token)
    try:
        missing, n = nodes_missing(marker, token)
    finally:
        marker.unlink(missing_ok=True)
    if missing:
        where = ", ".join(f"{m['host']} ({m['ip']})" for m in missing)
        raise ClusterError(
            f"Ray node(s) {where} cannot see {run_dir.resolve()}: put the results folder on a "
            "filesystem every node mounts at the same path (NFS or similar; --results PATH), "
            f"then RESUME={run_dir.name}"
        )
    return n


def _alive_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def record_lost_trials(
    run_dir: Path, specs: Sequence[TrialSpec], errors: dict[str, str], *, wait_s: float = 45.0
) -> None:
    """After the grid: a trial that still reads ``running`` lost its Ray worker without recording
    an end. If the node it ran on is gone from the cluster it is ``interrupted`` (``RESUME=``
    continues it from its checkpoint); a worker lost on a live node is ``failed``. Ray reports the
    lost worker (``ActorUnavailableError``) before its health checks mark the node dead, so a node
    still alive is asked again for up to ``wait_s``. ``errors``: Ray's error, by trial name."""
    lost = {trial_name(s): run_dir / "trials" / trial_name(s) for s in specs}
    lost = {n: d for n, d in lost.items() if read_status(d)["status"] == "running"}
    if not lost:
        return
    nodes = {read_status(d).get("node", {}).get("ray_node_id") for d in lost.values()}
    alive, end = _alive_nodes(), time.time() + wait_s
    while nodes & alive and time.time() < end:
        time.sleep(1.0)
        alive = _alive_nodes()
    for name, tdir in lost.items():
        status = read_status(tdir)
        node, error = status.get("node", {}), errors.get(name, "no error from Ray")
        ckpt = read_checkpoint(tdir)
        where = f"{node.get('host', '?')} ({node.get('ip', '?')})"
        if node.get("ray_node_id") not in alive:
            status.update(status="interrupted", error=f"Ray node {where} died; {error}")
        else:
            status.update(status="failed", error=f"Ray worker on {where} died; {error}")
        status.update(checkpoint_step=ckpt["step"] if ckpt else 0)
        write_status(tdir, status)


RAY_PROCESSES = "ray_processes.json"


def _psutil() -> Any:
    """psutil, which Ray installs under ``ray/thirdparty_files`` (found without importing Ray)."""
    try:
        import psutil
    except ImportError:
        spec = importlib.util.find_spec("ray")
        if spec is None or spec.origin is None:
            raise
        sys.path.append(str(Path(spec.origin).parent / "thirdparty_files"))
        import psutil
    return psutil


def _identity(proc: Any) -> dict[str, Any]:
    return {"pid": proc.pid, "create_time": proc.create_time(), "name": proc.name()}


def record_ray_processes(run_dir: Path) -> None:
    """Write the driver and every process it started (Ray's) to ``run_dir/ray_processes.json``."""
    psutil = _psutil()

    me = psutil.Process()
    seen: dict[int, dict[str, Any]] = {}
    path = run_dir / RAY_PROCESSES
    if path.exists():
        seen = {p["pid"]: p for p in json.loads(path.read_text())["processes"]}
    for child in me.children(recursive=True):
        try:
            seen.setdefault(child.pid, _identity(child))
        except psutil.NoSuchProcess:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"driver": _identity(me), "processes": list(seen.values())}))
    tmp.replace(path)


def _alive(psutil: Any, ident: dict[str, Any]) -> Any | None:
    """The process ``ident`` names if it still runs (same pid and start time), else ``None``."""
    try:
        proc = psutil.Process(ident["pid"])
        return proc if abs(proc.create_time() - ident["create_time"]) < 1e-3 else None
    except psutil.NoSuchProcess:
        return None


def stop_leftover_ray(results: Path) -> int:
    """Stop the Ray processes of runs under ``results`` whose driver is gone (killed); returns how
    many were stopped. Runs whose driver still runs are left alone."""
    files = list(results.glob(f"*/{RAY_PROCESSES}"))
    if not files:
        return 0
    psutil = _psutil()

    stopped = 0
    for path in files:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if _alive(psutil, record["driver"]) is not None:
            continue
        alive = [(i, p) for i in record["processes"] if (p := _alive(psutil, i)) is not None]
        procs = [p for _, p in alive]
        for proc in procs:
            proc.terminate()
        _, still = psutil.wait_procs(procs, timeout=5)
        for proc in still:
            proc.kill()
        if alive:
            names = ", ".join(sorted({i["name"] for i, _ in alive}))
            print(
                f"stopped {len(alive)} leftover Ray process(es) of run {path.parent.name} "
                f"(its driver was killed): {names}"
            )
        stopped += len(procs)
        path.unlink(missing_ok=True)
    return stopped


def ignore_sigint() -> None:
    """Ray worker setup: Ctrl-C is the driver's to handle (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


WORKER_ENV = {"worker_process_setup_hook": "benchmark.tune_adapter.ignore_sigint"}
"""``runtime_env`` of every run's Ray job, local or on a cluster."""


def run_with_ray(
    specs: Sequence[TrialSpec],
    run_dir: Path,
    *,
    attempt: int,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    num_cpus: int | None = None,
    checkpoint_every_s: float = 120.0,
    progress_every_s: float = 30.0,
) -> None:
    """Run ``specs`` as one Tune grid. Local Ray unless ``RAY_ADDRESS`` is set (then join it)."""
    # before importing ray: one progress line per trial (not deduplicated), no usage reporting,
    # Ctrl-C as a KeyboardInterrupt (not Tune's handler and its Tuner.restore advice)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    address = os.environ.get("RAY_ADDRESS")
    if not address:  # local Ray on loopback (Ray binds Linux nodes to a routable address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import tune

    started = not ray.is_initialized()
    recorder = threading.Event()
    if started:
        if address:
            check_reachable(address)
            ray.init(address=address, log_to_driver=True, runtime_env=WORKER_ENV)
            n = check_shared_results(run_dir)
            print(f"Ray cluster {address}: {n} node(s), each sees {run_dir.resolve()}", flush=True)
        else:  # "local": start one, never join a cluster a `ray start` left in /tmp/ray
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=True,
                runtime_env=WORKER_ENV,
            )
            record_ray_processes(run_dir)

            def rerecord() -> None:  # workers and agents that start after init
                while not recorder.wait(2.0):
                    record_ray_processes(run_dir)

            threading.Thread(target=rerecord, name="ray processes", daemon=True).start()
    trainable = tune.with_resources(tune_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            trial_dirname_creator=lambda t: trial_name(TrialSpec(**t.config["trial"]))
        ),
        param_space={
            "run_dir": str(run_dir.resolve()),
            "checkpoint_every_s": checkpoint_every_s,
            "progress_every_s": progress_every_s,
            "trial": tune.grid_search([asdict(s) for s in specs]),
        },
        run_config=tune.RunConfig(
            name=f"attempt-{attempt}",
            storage_path=str((run_dir / "ray").resolve()),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    try:
        grid = tuner.fit()  # errored trials are recorded in their status.json; the grid goes on
        errors = {
            trial_name(TrialSpec(**r.config["trial"])): f"{type(r.error).__name__}: {r.error}"
            for r in grid
            if r.error is not None
        }
        errors = {k: v.splitlines()[0] for k, v in errors.items()}
        # local Ray's one node lives as long as this driver: a lost worker there is a crash
        record_lost_trials(run_dir, specs, errors, wait_s=45.0 if address else 0.0)
    finally:  # Ctrl-C included: stop this run's workers and local Ray before reporting
        recorder.set()
        if started:
            ray.shutdown()
            (run_dir / RAY_PROCESSES).unlink(missing_ok=True)
