"""``random``: the uniform random policy, the floor every comparison plot shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.api import AlgoConfig, Algorithm


@dataclass(frozen=True)
class RandomConfig(AlgoConfig):
    """The random policy has no hyperparameters (uniform over the action space)."""


class RandomPolicy(Algorithm):
    """Uniform actions in ``[act_low, act_high]`` (or a uniform index for discrete tasks)."""

    name = "random"
    Config = RandomConfig

    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray | int:
        if self.task.discrete:
            return int(self.ctx.np_rng.integers(self.task.act_dim))
        return self.random_action()
