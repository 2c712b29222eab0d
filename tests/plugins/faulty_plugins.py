"""Test-only plugins (registered through MBRL_BENCH_PLUGINS): they fail on purpose."""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.api import AlgoConfig
from algorithms.random_policy import RandomPolicy


@dataclass(frozen=True)
class FaultyConfig(AlgoConfig):
    """Test-only."""

    fail_at: int = 150
    """Env step at which the plugin fails (test-only)."""


class Diverging(RandomPolicy):
    """Reports a NaN loss from ``fail_at`` on, as a diverged learner would."""

    name = "diverging"
    Config = FaultyConfig

    def __init__(self, task, config, ctx) -> None:
        super().__init__(task, config, ctx)
        self.steps = 0

    def update(self):
        self.steps += 1
        return {"loss": float("nan") if self.steps >= self.config.fail_at else 0.0}


class Crashing(RandomPolicy):
    """Raises from ``fail_at`` on, as a buggy plugin would."""

    name = "crashing"
    Config = FaultyConfig

    def __init__(self, task, config, ctx) -> None:
        super().__init__(task, config, ctx)
        self.steps = 0

    def update(self):
        self.steps += 1
        if self.steps >= self.config.fail_at:
            raise RuntimeError("boom")
        return {}
