from __future__ import annotations

import os
import sys
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
