"""A learned termination predictor, for tasks without a termination function (``gym:<id>``).

STEVE learns its done-predictor next to its dynamics (Buckman et al. 2018; tensorflow/models
``research/steve`` ``worldmodel.py``: a 4 x 128 sigmoid network, Adam 3e-4); here it is a
classifier ``p(terminated | obs, act, next_obs)`` trained by binary cross-entropy on the real
transitions every time the dynamics ensemble is refitted, with as many minibatch steps as that
refit took (:class:`~algorithms.models.learned.LearnedModel`). A transition is predicted
terminal when ``p > threshold``. Until the replay holds a terminal transition the predictor says
"never" without training (a task that never terminates costs nothing).

Its call signature is a task's ``termination_fn(obs, act, next_obs) -> bool [...]``, so every
plugin that masks imagined rollouts uses it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from algorithms.api import PositiveFloat, PositiveInt, UnitInterval
from algorithms.learners.base import adam, mlp
from algorithms.models.normalizer import Normalizer


@dataclass(frozen=True)
class TerminationConfig:
    """The learned termination predictor (nested as ``model.termination`` in every learned-model
    plugin: ``SET mbpo.model.termination.learn=true``)."""

    learn: bool | None = None
    """Learn the termination instead of using the task's ``termination_fn``. ``None``: exactly
    when the task has none (generic ``gym:`` tasks); ``True`` on a task that has one is the
    ablation "how much does the known termination function help"."""
    hidden: PositiveInt = 128
    """Units per hidden layer (STEVE's done network: 128)."""
    layers: PositiveInt = 4
    """Hidden layers (STEVE's done network: 4)."""
    lr: PositiveFloat = 3e-4
    """Adam learning rate (STEVE: 3e-4 everywhere)."""
    batch_size: PositiveInt = 256
    """Minibatch size (the ensemble's, MBPO ``batch_size=256``)."""
    threshold: UnitInterval = 0.5
    """Predict "terminated" above this probability."""


class LearnedTermination:
    """``termination_fn`` learned from real transitions (see the module docstring).

    Args:
        obs_dim: ``O``.
        act_dim: ``A`` (continuous actions in env units, or the one-hot width).
        config: the predictor's settings.
        device: where the network lives.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, config: TerminationConfig, device: Any = None
    ) -> None:
        self.config = config
        self.device = torch.device("cpu") if device is None else torch.device(device)
        in_dim = 2 * obs_dim + act_dim
        self.net = mlp(in_dim, 1, config.hidden, config.layers).to(self.device)
        self.inputs = Normalizer(in_dim).to(self.device)
        self.optim = adam(self.net.parameters(), config.lr)
        self.trained = False
        """Whether a terminal transition has been seen (before that: never terminal)."""

    def _inputs(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor):
        """``[..., 2O + A]`` float32 on the predictor's device, not yet normalized."""
        return torch.cat([obs, act, next_obs], dim=-1).to(self.device, torch.float32)

    @torch.no_grad()
    def probability(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor):
        """``[...]`` float: ``p(terminated)`` (0 before any terminal transition was seen)."""
        if not self.trained:
            return torch.zeros(next_obs.shape[:-1], device=next_obs.device)
        logit = self.net(self.inputs.normalize(self._inputs(obs, act, next_obs))).squeeze(-1)
        return torch.sigmoid(logit).to(next_obs.device)

    def __call__(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor):
        """``termination_fn``: ``[..., O], [..., A], [..., O] -> bool [...]``."""
        return self.probability(obs, act, next_obs) > self.config.threshold

    def fit(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        *,
        batches: int,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """``batches`` Adam steps of binary cross-entropy on minibatches drawn with ``rng`` from
        ``[N, ...]`` real transitions. Returns ``model_term_loss`` (mean BCE of those steps) and
        ``model_term_recall`` (fraction of the terminal transitions predicted terminal after the
        fit); nothing while no transition is terminal."""
        y = terminated.reshape(-1).to(self.device, torch.float32)
        if not bool((y > 0).any()):
            return {}
        x = self._inputs(obs, act, next_obs)
        self.inputs.fit(x)
        x = self.inputs.normalize(x)
        steps = max(1, batches)
        # every minibatch's rows in one draw and one copy; the loss stays on the device
        rows = torch.as_tensor(
            rng.integers(0, len(x), (steps, self.config.batch_size)), device=self.device
        )
        loss_fn = nn.BCEWithLogitsLoss()
        total = torch.zeros((), device=self.device)
        for idx in rows:
            loss = loss_fn(self.net(x[idx]).squeeze(-1), y[idx])
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
            total += loss.detach()
        self.trained = True
        with torch.no_grad():
            pos = y > 0
            pred = torch.sigmoid(self.net(x[pos]).squeeze(-1)) > self.config.threshold
        return {
            "model_term_loss": float(total) / steps,
            "model_term_recall": float(pred.float().mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "inputs": self.inputs.state_dict(),
            "optim": self.optim.state_dict(),
            "trained": self.trained,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.inputs.load_state_dict(state["inputs"])
        self.optim.load_state_dict(state["optim"])
        self.trained = bool(state["trained"])
