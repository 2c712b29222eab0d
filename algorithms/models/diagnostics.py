"""Model-error diagnostics: how far a learned model's predictions drift from real trajectories.

The MBPO post's lesson is that one-step errors are small but compound over long rollouts. A
:class:`ModelErrorProbe` measures both on real transitions the model has *not* been trained on:
the algorithm feeds it every real transition, and just before each refit asks it to score the
current model on the transitions gathered since the previous fit (held out from that model by
construction), then to forget them.

``k``-step error: from every real state ``s_i`` of that stretch, the model is rolled forward
open-loop on the real actions ``a_i .. a_{i+k-1}`` with its elites' mean prediction (no
sampling), and compared with the real ``s_{i+k}``. Windows never cross an episode end. The error
is the mean over the policy-visible dims (``TaskSpec.policy_obs_dims``) of the squared error in
units of each dim's standard deviation over every real state seen so far (so 1.0 is as bad as
predicting the mean state), angles wrapped to ``[-pi, pi]``. Logged as ``model_err_h{k}``.

The pending steps live in a :class:`~algorithms.replay.sequence.SequenceReplay` (``capacity``
steps, the most recent; an episode whose start was overwritten keeps its surviving steps, which
are scored as far as they go), whose episode ends bound the windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from algorithms.api import Transition
from algorithms.replay.sequence import SequenceReplay

if TYPE_CHECKING:
    from envs.spec import TaskSpec


class ModelErrorProbe:
    """Held-out ``k``-step prediction error of a learned model (see the module docstring).

    Args:
        obs_dim, act_dim: ``O`` and ``A``.
        horizons: the ``k`` values to report (``model_err_h{k}``).
        dims: observation dims scored (``None``: all).
        angle_dims: dims whose error is wrapped to ``[-pi, pi]``.
        capacity: at most this many pending transitions are kept (the most recent).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        horizons: Sequence[int] = (1, 5, 10, 25),
        *,
        dims: Sequence[int] | None = None,
        angle_dims: Sequence[int] = (),
        capacity: int = 5000,
    ) -> None:
        if not horizons or min(horizons) < 1:
            raise ValueError(f"horizons must be positive integers, got {tuple(horizons)}")
        self.horizons = tuple(sorted(set(int(h) for h in horizons)))
        self.dims = list(range(obs_dim)) if dims is None else list(dims)
        self.angle_dims = [self.dims.index(d) for d in angle_dims if d in self.dims]
        self.capacity = capacity
        self.obs_dim, self.act_dim = obs_dim, act_dim
        # headless episodes kept: every pending step is scored, as far as its episode was seen
        self.pending = SequenceReplay(capacity, obs_dim, act_dim, drop_partial=False)
        self._n = 0
        self._sum = np.zeros(obs_dim)
        self._sumsq = np.zeros(obs_dim)

    @classmethod
    def for_task(cls, task: TaskSpec, horizons: Sequence[int]) -> ModelErrorProbe:
        """A probe scoring ``task``'s policy-visible dims, angles wrapped."""
        return cls(
            task.obs_dim,
            task.act_dim,
            horizons,
            dims=task.policy_obs_dims,
            angle_dims=task.angle_dims,
        )

    def add(self, t: Transition) -> None:
        """Record one real transition (in the order they happened)."""
        obs = np.asarray(t.obs, np.float64).reshape(-1)
        self.pending.add(t)
        self._n += 1
        self._sum += obs
        self._sumsq += obs * obs

    def clear(self) -> None:
        """Forget the pending transitions (the model is about to be trained on them)."""
        self.pending.clear()

    def scale(self) -> np.ndarray:
        """``[O]`` standard deviation of every real state seen so far (floored at 1e-6)."""
        n = max(self._n, 1)
        var = self._sumsq / n - (self._sum / n) ** 2
        return np.sqrt(np.maximum(var, 1e-12))

    @torch.no_grad()
    def measure(self, model: Any) -> dict[str, float]:
        """Score ``model`` (a fitted :class:`ProbabilisticEnsemble`) on the pending transitions,
        then clear them. Horizons without a full window are left out (no NaN is logged)."""
        steps = self.pending.steps()
        n, kmax = len(steps.obs), max(self.horizons)
        # window [i, i + k) is valid when its last step i + k - 1 is in i's episode
        ends = self.pending.episode_ends(np.arange(n))
        self.pending.clear()
        if not n or not getattr(model, "fitted", False):
            return {}
        obs, act, nxt = (
            torch.as_tensor(a, device=model.device) for a in (steps.obs, steps.act, steps.next_obs)
        )
        dims = torch.as_tensor(self.dims, device=model.device)
        scale = torch.as_tensor(self.scale()[self.dims], dtype=torch.float32, device=model.device)
        out: dict[str, float] = {}
        x = obs
        idx = np.arange(n)
        for t in range(kmax):
            k = t + 1
            a = act[np.minimum(idx + t, n - 1)]
            x = model.step(x, a, mode="mean", sample=False).next_obs
            if k not in self.horizons:
                continue
            last = idx + k - 1
            ok = last < ends
            if not ok.any():
                continue
            sel = torch.as_tensor(np.flatnonzero(ok), device=model.device)
            err = (x[sel] - nxt[torch.as_tensor(last[ok], device=model.device)]).index_select(
                -1, dims
            )
            if self.angle_dims:
                ang = err[:, self.angle_dims]
                err[:, self.angle_dims] = torch.atan2(torch.sin(ang), torch.cos(ang))
            value = float(((err / scale) ** 2).mean())
            if not math.isnan(value):  # a diverged rollout shows as a huge error, not a crash
                out[f"model_err_h{k}"] = min(value, 1e6)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending.state_dict(),
            "n": self._n,
            "sum": self._sum.copy(),
            "sumsq": self._sumsq.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pending = state["pending"]
        if isinstance(pending, dict):
            self.pending.load_state_dict(pending)
        else:  # a checkpoint from before the SequenceReplay: (obs, act, next_obs, done) tuples
            self.pending.clear()
            for obs, act, nxt, done in pending:
                self.pending.add(Transition(obs, act, 0.0, nxt, done, False))
        self._n, self._sum, self._sumsq = state["n"], state["sum"].copy(), state["sumsq"].copy()
