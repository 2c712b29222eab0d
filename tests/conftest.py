from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {"diverging": "faulty_plugins:Diverging", "crashing": "faulty_plugins:Crashing"}

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest-xdist workers on two cores: one torch thread each, as every
    # trial of the driver uses (TrialSpec.threads), so that the workers do not oversubscribe.
    torch.set_num_threads(1)


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for ``python -m benchmark`` subprocesses, with the test-only plugins."""
    env = dict(os.environ)
    env["MBRL_BENCH_PLUGINS"] = ",".join(f"{k}={v}" for k, v in PLUGINS.items())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "plugins"), str(ROOT)])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


# Runs `benchmark.__main__.main` and then asserts that Ray was never imported: the probe for
# "fails (or plans) before Ray starts".
NO_RAY_PROBE = (
    "import sys, benchmark.__main__ as m; rc = m.main(sys.argv[1:]); "
    "assert 'ray' not in sys.modules, 'ray was imported'; sys.exit(rc)"
)


@pytest.fixture
def cli(python: str, cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """``cli("run", "--algos", ...)`` runs ``python -m benchmark`` from the repo root.

    ``no_ray=True`` runs it under :data:`NO_RAY_PROBE` instead; ``env`` replaces
    :func:`cli_env`'s environment.
    """

    def run(
        *args: str, env: dict[str, str] | None = None, no_ray: bool = False, timeout: int = 600
    ) -> subprocess.CompletedProcess:
        head = ["-c", NO_RAY_PROBE] if no_ray else ["-m", "benchmark"]
        return subprocess.run(
            [python, *head, *args],
            cwd=ROOT,
            env=cli_env if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _terminal_sigint() -> None:
    """SIGINT as a terminal leaves it: a test suite started in the background (``cmd &``, nohup)
    inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored, so the Ctrl-C tests
    would send a signal nobody receives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def spawn_cli(python: str, cli_env: dict[str, str]) -> Callable[..., subprocess.Popen]:
    """``spawn_cli("run", ...)`` starts ``python -m benchmark`` in the background, in its own
    session (a terminal's Ctrl-C reaches the whole process group, ``os.killpg`` stops it all).

    Output goes to pipes, or to the file ``log`` (stdout and stderr together) for a long run,
    where a full pipe would block the driver.
    """

    def spawn(
        *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen:
        cmd, env = [python, "-m", "benchmark", *args], cli_env if env is None else env
        if log is None:
            return subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, start_new_session=True, preexec_fn=_terminal_sigint,
            )  # fmt: skip
        with log.open("w") as out:
            return subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                text=True, start_new_session=True, preexec_fn=_terminal_sigint,
            )  # fmt: skip

    return spawn


#: The longest tests of ``make test`` with their rough cost in seconds on the reference machine
#: (docs/performance.md): the Ray lifecycle and grid tests, the canaries, the CLI merges.
LONG: dict[str, float] = {
    "test_lifecycle.py::test_ray_ctrl_c_then_kill_9_then_resume": 150,
    "test_canaries.py::test_tdmpc2": 150,
    "test_orchestrator.py::test_ray_grid_end_to_end_with_failures": 80,
    "test_canaries.py::test_pilco": 50,
    "test_canaries.py::test_mve": 48,
    "test_canaries.py::test_steve": 44,
    "test_canaries.py::test_muzero": 41,
    "test_canaries.py": 20,
    "test_plots_merge.py::test_cli": 15,
}


def _cost(item: pytest.Item) -> float:
    return next((c for key, c in LONG.items() if key in item.nodeid), 0.0)


@pytest.hookimpl(trylast=True)  # after `-m` has deselected: the shares are of what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deal the long tests (:data:`LONG`) out to the xdist workers, longest first, at the head
    of each worker's share. ``make test`` runs ``--dist worksteal``, which hands worker ``k``
    the ``k``-th contiguous share of the collection and lets an idle worker steal from the end
    of another's queue: with the long tests at the heads of the shares, both workers start on
    them and the tail is short tests. Without xdist only the order changes."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    long = sorted((it for it in items if _cost(it) > 0), key=_cost, reverse=True)
    short = [it for it in items if _cost(it) == 0]
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for it in long:  # greedy: the next longest to the least loaded share
        k = loads.index(min(loads))
        heads[k].append(it)
        loads[k] += _cost(it)
    # share sizes as worksteal's first distribution: len(pending) // nodes_remaining
    out: list[pytest.Item] = []
    left = len(items)
    for k in range(workers):
        size = left // (workers - k)
        take = max(size - len(heads[k]), 0)
        out += heads[k] + short[:take]
        short = short[take:]
        left -= size
    items[:] = out + short
