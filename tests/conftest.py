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
