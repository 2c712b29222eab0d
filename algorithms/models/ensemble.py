"""Probabilistic ensemble dynamics model (PETS, Chua et al. 2018; MBPO, Janner et al. 2019).

``E`` Gaussian MLPs ``(obs, act) -> N(mean, diag(var))`` over the normalized state change
``next_obs - obs`` (plus, optionally, the reward), trained with the Gaussian NLL on normalized
inputs and bootstrapped per member, with soft learned bounds on the log-variance. All members run
as one batched op per layer (:class:`~algorithms.models.layers.EnsembleMLP`).

Shapes: ``E`` members, ``K`` elites, ``B`` batch, ``O`` obs dim, ``A`` action dim,
``I = O + A`` inputs, ``D = O (+ 1 with a learned reward)`` outputs.

Prediction (:meth:`ProbabilisticEnsemble.step`) keeps the autograd graph (callers wrap planning in
``torch.no_grad()``); its propagation modes follow PETS:

- ``"ts1"``: every row draws a (balanced) random elite afresh at every step (PETS TS-1);
- ``"tsinf"``: every row keeps one elite for the whole rollout (PETS TS-∞): draw an
  :class:`Assignment` once with :meth:`ProbabilisticEnsemble.assign` and pass it at every step
  (:class:`EnsembleStep` does this for you);
- ``"mean"``: the elites' mean prediction (expectation over members; PETS "E" / "DE").

Rows are split across elites (each row is run through one member only) for ``ts1``/``tsinf``, so
the cost of a step is that of one MLP, not ``K``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algorithms.models.ensemble_config import EnsembleConfig
from algorithms.models.layers import EnsembleLinear, EnsembleMLP
from algorithms.models.normalizer import Normalizer

if TYPE_CHECKING:
    from envs.spec import TaskSpec

Propagation = Literal["ts1", "tsinf", "mean"]
Array = np.ndarray | torch.Tensor


class Assignment(NamedTuple):
    """Which elite each of ``B`` rows goes through (balanced: counts differ by at most one).

    Rows are padded to ``K * M`` slots (``M = ceil(B / K)``); slot ``s`` belongs to elite
    position ``s // M``.
    """

    perm: torch.Tensor
    """``[K * M]`` long: slot -> row (values ``>= B`` are padding rows)."""
    inv: torch.Tensor
    """``[B]`` long: row -> slot."""
    per_member: int
    """``M``: slots per elite."""

    @property
    def batch(self) -> int:
        return len(self.inv)


class StepOutput(NamedTuple):
    next_obs: torch.Tensor
    """``[B, O]``."""
    reward: torch.Tensor | None
    """``[B]`` when the model learns the reward, else ``None``."""


@dataclass(frozen=True)
class FitResult:
    """What one :meth:`ProbabilisticEnsemble.fit` did (plain floats, ready to log)."""

    epochs: int
    train_loss: float
    """Mean per-member NLL over the last epoch's minibatches (normalized units)."""
    holdout_mse: float
    """Mean holdout MSE of the elites (normalized target units) with the kept weights."""
    member_holdout_mse: tuple[float, ...]
    elites: tuple[int, ...]
    n_train: int
    n_holdout: int
    seconds: float
    batches: int = 0
    """Minibatch steps taken (every epoch's, the last one's possibly partial)."""

    def metrics(self, prefix: str = "model_") -> dict[str, float]:
        """Deterministic metrics to log (``seconds`` is left out: wall-clock time would make
        same-seed curves differ)."""
        return {
            f"{prefix}train_loss": self.train_loss,
            f"{prefix}holdout_mse": self.holdout_mse,
            f"{prefix}epochs": float(self.epochs),
        }


def _as_tensor(x: Array, device: torch.device) -> torch.Tensor:
    if torch.is_tensor(x):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


class ProbabilisticEnsemble(nn.Module):
    """``E`` probabilistic MLPs over ``[obs, act] -> [delta_obs (, reward)]`` (PETS / MBPO).

    Owns its Adam optimizer (``self.optim``; save it with ``self.optim.state_dict()``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: EnsembleConfig | None = None,
        device: torch.device | str = "cpu",
        angle_dims: tuple[int, ...] = (),
        drop_dims: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        cfg = config or EnsembleConfig()
        self.config = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.angle_dims = tuple(angle_dims)
        self.drop_dims = tuple(drop_dims)
        skip = set(self.angle_dims) | set(self.drop_dims)
        self._keep_dims = [i for i in range(obs_dim) if i not in skip]
        self.in_dim = len(self._keep_dims) + 2 * len(self.angle_dims) + act_dim
        self.out_dim = obs_dim + int(cfg.learn_reward)
        self.net = EnsembleMLP(cfg.members, self.in_dim, 2 * self.out_dim, cfg.hidden, cfg.layers)
        self.max_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), cfg.init_max_logvar))
        self.min_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), cfg.init_min_logvar))
        self.in_norm = Normalizer(self.in_dim)
        self.out_norm = Normalizer(self.out_dim)
        self.register_buffer("elite_idx", torch.arange(cfg.elites))
        self.register_buffer("holdout_mse", torch.full((cfg.members,), math.inf))
        self.register_buffer("num_fits", torch.zeros((), dtype=torch.long))
        self._decays = cfg.decays()
        self._gathered: tuple[tuple, list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self.to(device)
        self.optim = self._make_optimizer()

    @classmethod
    def for_task(
        cls, task: TaskSpec, config: EnsembleConfig, device: torch.device | str = "cpu"
    ) -> ProbabilisticEnsemble:
        """An ensemble over ``task``'s observations: its angle dims as sin/cos, its reward-only
        dims left out of the inputs (``TaskSpec.angle_dims``, ``reward_only_dims``)."""
        return cls(
            task.obs_dim,
            task.act_dim,
            config,
            device=device,
            angle_dims=task.angle_dims,
            drop_dims=task.reward_only_dims,
        )

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., O] -> [..., O - len(drop_dims) + len(angle_dims)]``: the network's state input.
        Angle dims are replaced by their ``sin`` and ``cos`` (PETS's ``obs_preproc`` for
        cart-pole), so the model need not learn the periodicity of an unbounded angle;
        ``drop_dims`` (a locomotion task's root x, ``TaskSpec.reward_only_dims``) are left out
        (PETS's half-cheetah ``obs_preproc``), though the model still predicts their change."""
        if not self.angle_dims:
            return obs[..., self._keep_dims] if self.drop_dims else obs
        ang = obs[..., list(self.angle_dims)]
        return torch.cat([obs[..., self._keep_dims], torch.sin(ang), torch.cos(ang)], dim=-1)

    # ------------------------------------------------------------------ structure
    @property
    def device(self) -> torch.device:
        return self.max_logvar.device

    @property
    def layers(self) -> list[EnsembleLinear]:
        return [*self.net.hidden, self.net.out]

    @property
    def fitted(self) -> bool:
        return bool(self.num_fits.item() > 0)

    @property
    def elites(self) -> list[int]:
        return self.elite_idx.tolist()

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the model's device when ``config.bf16``, else a no-op."""
        if self.config.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """Adam with one parameter group per layer's weights carrying that layer's L2 coefficient.

        Adam's (coupled) ``weight_decay`` adds ``wd * W`` to the gradient: exactly the gradient of
        MBPO's ``wd * l2_loss(W) = wd * sum(W**2) / 2`` loss term, but computed inside the fused
        optimizer kernel instead of as ~4 extra autograd ops per layer. Biases and the log-variance
        bounds are not decayed (as in MBPO).
        """
        groups: list[dict] = [
            {"params": [layer.weight], "weight_decay": wd}
            for wd, layer in zip(self._decays, self.layers, strict=True)
        ]
        rest = [layer.bias for layer in self.layers] + [self.max_logvar, self.min_logvar]
        groups.append({"params": rest, "weight_decay": 0.0})
        try:  # the fused CPU kernel (torch >= 2.4): one kernel for every tensor
            return torch.optim.Adam(groups, lr=self.config.lr, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover - depends on the build
            return torch.optim.Adam(groups, lr=self.config.lr)

    def l2_penalty(self) -> torch.Tensor:
        """``sum_l wd_l * sum(W_l**2) / 2``: the L2 term Adam's grouped ``weight_decay`` applies."""
        return sum(
            (0.5 * wd) * layer.weight.square().sum()
            for wd, layer in zip(self._decays, self.layers, strict=True)
        )

    # ------------------------------------------------------------------ forward
    def _bound(self, raw_logvar: torch.Tensor) -> torch.Tensor:
        """Soft clamp to ``[min_logvar, max_logvar]`` (PETS/MBPO softplus trick)."""
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        return self.min_logvar + F.softplus(logvar - self.min_logvar)

    def forward(
        self, x: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized inputs -> normalized Gaussian ``(mean, logvar)``.

        ``x``: ``[E', B, I]`` (one batch per member) or ``[B, I]`` (shared by every member);
        ``members``: ``[E']`` long, run only these members (``None``: all ``E``).
        Returns ``mean, logvar``: ``[E', B, D]`` each, float32 (with ``config.bf16`` the network
        runs under bf16 autocast; its output is cast back before the log-variance bounds).
        """
        if members is not None and not torch.is_grad_enabled():
            out = self._inference(x, members)
        else:
            out = self._train_forward(x, members)
        mean, raw = out.float().split(self.out_dim, dim=-1)
        return mean, self._bound(raw)

    def _inference(self, x: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """The planning path (no autograd): the cached member weights (bf16 with
        ``config.bf16``) applied without autocast's per-op dispatch and casts, the activation in
        place. ``[E', B, I]`` or ``[B, I]`` -> ``[E', B, 2D]`` in the weights' dtype."""
        params = self._member_params(members)
        h = x.to(params[0][0].dtype)
        if h.dim() == 2:
            h = h.expand(len(members), *h.shape)
        inplace = isinstance(self.net.act, nn.SiLU)
        for w, b in params[:-1]:
            h = torch.baddbmm(b, h, w)
            h = F.silu(h, inplace=True) if inplace else self.net.act(h)
        w, b = params[-1]
        return torch.baddbmm(b, h, w)

    def _train_forward(self, x: torch.Tensor, members: torch.Tensor | None) -> torch.Tensor:
        with self._autocast():
            if members is None:
                out = self.net(x)
            else:
                if x.dim() == 2:
                    x = x.expand(len(members), *x.shape)
                params = self._member_params(members)
                h = x
                for w, b in params[:-1]:
                    h = self.net.act(torch.baddbmm(b, h, w))
                w, b = params[-1]
                out = torch.baddbmm(b, h, w)
        return out

    def _member_params(self, members: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(weight [E', in, out], bias [E', 1, out])]`` per layer for the given members.

        Under ``no_grad`` (planning) the gathered copies are cached until a weight changes
        (tracked by the tensors' version counters: optimizer steps, ``load_state_dict`` and
        snapshot restores all write in place), saving one copy of every weight per model call.
        With ``config.bf16`` the cached copies are stored in bf16 (saving the per-call cast).
        """
        layers = self.layers
        if torch.is_grad_enabled():
            return [(layer.weight[members], layer.bias[members]) for layer in layers]
        key = (
            tuple(members.tolist()),
            tuple((layer.weight._version, layer.bias._version) for layer in layers),
            tuple(layer.weight.data_ptr() for layer in layers),
        )
        if self._gathered is None or self._gathered[0] != key:
            dtype = torch.bfloat16 if self.config.bf16 else layers[0].weight.dtype
            gathered = [
                (layer.weight[members].to(dtype), layer.bias[members].to(dtype)) for layer in layers
            ]
            self._gathered = (key, gathered)
        return self._gathered[1]

    def _elite_members(self) -> torch.Tensor | None:
        """The elite indices, or ``None`` when every member is an elite in order (no gather)."""
        k = len(self.elite_idx)
        if k == self.config.members and bool(
            (self.elite_idx == torch.arange(k, device=self.device)).all()
        ):
            return None
        return self.elite_idx

    def assign(self, batch: int, generator: torch.Generator | None = None) -> Assignment:
        """A balanced random assignment of ``batch`` rows to the elites (uses ``generator``)."""
        k = len(self.elite_idx)
        m = -(-batch // k)
        perm = torch.randperm(k * m, generator=generator).to(self.device)
        inv = torch.argsort(perm)[:batch]
        return Assignment(perm=perm, inv=inv, per_member=m)

    def _noise(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)

    def predict_normalized(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        *,
        mode: Propagation = "ts1",
        sample: bool = True,
        generator: torch.Generator | None = None,
        assignment: Assignment | None = None,
    ) -> torch.Tensor:
        """One step in normalized target units: ``[B, O], [B, A] -> [B, D]`` (keeps the graph).

        ``mean`` with ``sample=True`` draws from the moment-matched Gaussian of the elites'
        mixture (mean of means; mean of variances plus variance of means).
        """
        x = self.in_norm(torch.cat([self.features(obs), act], dim=-1))
        b = x.shape[0]
        members = self._elite_members()
        if mode == "mean":
            mean, logvar = self.forward(x, members)
            mu = mean.mean(0)
            if not sample:
                return mu
            var = logvar.exp().mean(0) + mean.var(0, unbiased=False)
            return mu + var.sqrt() * self._noise(mu, generator)
        if mode not in ("ts1", "tsinf"):
            raise ValueError(f"unknown propagation mode {mode!r}; use 'ts1', 'tsinf' or 'mean'")
        if assignment is None:  # ts1: a fresh draw at every call
            if mode == "tsinf":
                raise ValueError("tsinf needs a fixed `assignment` (see assign / EnsembleStep)")
            assignment = self.assign(b, generator)
        if assignment.batch != b:
            raise ValueError(f"assignment is for {assignment.batch} rows, got {b}")
        k, m = len(self.elite_idx), assignment.per_member
        if k * m > b:
            x = torch.cat([x, x.new_zeros(k * m - b, x.shape[-1])])
        xg = x.index_select(0, assignment.perm).view(k, m, -1)
        mean, logvar = self.forward(xg, members)
        y = mean
        if sample:
            y = mean + (0.5 * logvar).exp() * self._noise(mean, generator)
        return y.reshape(k * m, -1).index_select(0, assignment.inv)

    def step(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        *,
        mode: Propagation = "ts1",
        sample: bool = True,
        generator: torch.Generator | None = None,
        assignment: Assignment | None = None,
    ) -> StepOutput:
        """Predicted ``next_obs`` ``[B, O]`` (and reward ``[B]``) for ``obs [B, O]``, ``act [B, A]``.

        Not under ``no_grad``: gradients flow to ``obs``, ``act`` and the weights.
        """
        y = self.out_norm.denormalize(
            self.predict_normalized(
                obs, act, mode=mode, sample=sample, generator=generator, assignment=assignment
            )
        )
        next_obs = obs + y[..., : self.obs_dim]
        reward = y[..., self.obs_dim] if self.config.learn_reward else None
        return StepOutput(next_obs, reward)

    def step_members(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """Every elite's own prediction, kept apart (STEVE's per-member rollouts).

        ``obs [K, B, O]`` (one batch per elite, ``K = len(elites)``) or ``[B, O]`` (the same
        batch for every elite), ``act`` likewise -> ``next_obs [K, B, O]``, ``reward [K, B]``
        (``None`` without a reward head). Elite ``k`` is ``self.elites[k]``; one batched op per
        layer, no loop over members. Not under ``no_grad``.
        """
        k = len(self.elite_idx)
        if obs.dim() == 2:
            obs = obs.expand(k, *obs.shape)
        if act.dim() == 2:
            act = act.expand(k, *act.shape)
        if obs.shape[0] != k or act.shape[0] != k:
            raise ValueError(
                f"step_members takes one batch per elite ([{k}, B, ...]) or a shared [B, ...] "
                f"batch, got obs {tuple(obs.shape)} and act {tuple(act.shape)}"
            )
        x = self.in_norm(torch.cat([self.features(obs), act], dim=-1))
        mean, logvar = self.forward(x, self.elite_idx)
        y = mean + (0.5 * logvar).exp() * self._noise(mean, generator) if sample else mean
        y = self.out_norm.denormalize(y)
        reward = y[..., self.obs_dim] if self.config.learn_reward else None
        return StepOutput(obs + y[..., : self.obs_dim], reward)

    # ------------------------------------------------------------------ training
    def _targets(self, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor | None):
        delta = next_obs - obs
        if self.config.learn_reward:
            if reward is None:
                raise ValueError("this ensemble learns the reward: pass `reward`")
            return torch.cat([delta, reward.reshape(-1, 1)], dim=-1)
        return delta

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss on normalized data ``x [E, B, I]``, ``y [E, B, D]``.

        Returns ``(total, nll)``: ``total`` = sum over members of the mean Gaussian NLL (without
        constants; MBPO ``_compile_losses``) + ``logvar_penalty * (sum(max_logvar) -
        sum(min_logvar))``; ``nll`` = the detached mean per-member NLL. The per-layer L2 term
        (:meth:`l2_penalty`) is applied by the optimizer (see :meth:`_make_optimizer`).
        """
        mean, logvar = self.forward(x)
        nll = ((mean - y).square() * torch.exp(-logvar) + logvar).mean(dim=(1, 2))
        total = nll.sum() + self.config.logvar_penalty * (
            self.max_logvar.sum() - self.min_logvar.sum()
        )
        return total, nll.detach().mean()

    @torch.no_grad()
    def member_mse(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``[E]`` MSE of each member's mean on normalized ``x [N, I]``, ``y [N, D]`` (batched)."""
        total = torch.zeros(self.config.members, device=self.device)
        for i in range(0, len(x), chunk):
            mean, _ = self.forward(x[i : i + chunk])
            total += (mean - y[i : i + chunk]).square().sum(dim=(1, 2))
        return total / max(1, len(x) * self.out_dim)

    @torch.no_grad()
    def evaluate(
        self, obs: Array, act: Array, next_obs: Array, reward: Array | None = None
    ) -> torch.Tensor:
        """``[E]`` one-step MSE per member on the given transitions (normalized target units)."""
        o, a, n = (_as_tensor(v, self.device) for v in (obs, act, next_obs))
        r = None if reward is None else _as_tensor(reward, self.device)
        x = self.in_norm(torch.cat([self.features(o), a], -1))
        y = self.out_norm(self._targets(o, n, r))
        return self.member_mse(x, y)

    def fit(
        self,
        obs: Array,
        act: Array,
        next_obs: Array,
        reward: Array | None = None,
        *,
        rng: np.random.Generator,
        max_epochs: int | None = None,
        max_batches: int | None = None,
    ) -> FitResult:
        """Train on ``N`` transitions (``obs [N, O]``, ``act [N, A]``, ``next_obs [N, O]``,
        ``reward [N]``) until early stopping, keeping each member's best-holdout weights.
        ``max_batches`` > 0 also stops after that many minibatch steps (a partial last epoch
        is scored and snapshotted as a whole one): a fixed training rate per env step
        (:attr:`~algorithms.models.learned.LearnedModelConfig.fit_batches_per_step`).

        Follows MBPO ``BNN.train``: a fresh random holdout split (``holdout_ratio``, capped at
        ``max_holdout``), input normalizer fitted on the training part, per-member bootstrap
        indices reshuffled each epoch, holdout MSE of every member after each epoch in one
        batched pass, per-member snapshots on >``improvement`` relative gain, stop after more
        than ``patience`` epochs without any, restore the snapshots, pick the elites.
        Warm-starts from the current weights. All randomness from ``rng``.
        """
        t0 = time.perf_counter()
        cfg, dev = self.config, self.device
        max_epochs = cfg.max_epochs if max_epochs is None else max_epochs
        o, a, n = (_as_tensor(v, dev) for v in (obs, act, next_obs))
        r = None if reward is None else _as_tensor(reward, dev)
        x_all = torch.cat([self.features(o), a], dim=-1)
        y_all = self._targets(o, n, r)
        total = len(x_all)
        if total == 0:
            raise ValueError("fit needs at least one transition")
        n_hold = min(int(total * cfg.holdout_ratio), cfg.max_holdout)
        if cfg.holdout_ratio > 0 and total >= 2:
            n_hold = max(n_hold, 1)
        order = torch.as_tensor(rng.permutation(total), device=dev)
        hold_idx, train_idx = order[:n_hold], order[n_hold:]
        x_tr, y_tr = x_all[train_idx], y_all[train_idx]
        self.in_norm.fit(x_tr)
        if cfg.normalize_targets:
            self.out_norm.fit(y_tr)
        x_tr, y_tr = self.in_norm(x_tr), self.out_norm(y_tr)
        if n_hold:
            x_ho, y_ho = self.in_norm(x_all[hold_idx]), self.out_norm(y_all[hold_idx])
        else:  # no holdout: early-stop on the training set
            x_ho, y_ho = x_tr, y_tr
        n_train, e, bs = len(x_tr), cfg.members, cfg.batch_size
        if cfg.bootstrap:
            idx = rng.integers(0, n_train, size=(e, n_train))
        else:
            idx = np.tile(np.arange(n_train), (e, 1))
        n_batches = -(-n_train // bs)
        xbuf = torch.empty(e * bs, self.in_dim, device=dev)
        ybuf = torch.empty(e * bs, self.out_dim, device=dev)

        params = [p for layer in self.layers for p in (layer.weight, layer.bias)]
        snapshot = [p.detach().clone() for p in params]
        best = torch.full((e,), math.inf, device=dev)
        since, epoch, train_loss, done = 0, 0, math.nan, 0
        self.train()
        while True:
            idx = rng.permuted(idx, axis=1)
            idx_t = torch.as_tensor(idx.T.copy(), device=dev)  # [n_train, E]: batch b is a slice
            loss_sum = torch.zeros((), device=dev)
            batches = n_batches if not max_batches else min(n_batches, max_batches - done)
            for b in range(batches):
                flat = idx_t[b * bs : (b + 1) * bs].T.reshape(-1)  # [E * b'], member-major
                m = len(flat) // e
                xb = torch.index_select(x_tr, 0, flat, out=xbuf[: len(flat)]).view(e, m, -1)
                yb = torch.index_select(y_tr, 0, flat, out=ybuf[: len(flat)]).view(e, m, -1)
                total_loss, nll = self.loss(xb, yb)
                self.optim.zero_grad(set_to_none=True)
                total_loss.backward()
                self.optim.step()
                loss_sum += nll
            epoch += 1
            done += batches
            train_loss = float(loss_sum) / batches
            mse = self.member_mse(x_ho, y_ho)
            improved = (best - mse) / best > cfg.improvement
            improved |= torch.isinf(best) & torch.isfinite(mse)
            if bool(improved.any()):
                with torch.no_grad():
                    mask = improved.view(-1, 1, 1)
                    for snap, p in zip(snapshot, params, strict=True):
                        snap.copy_(torch.where(mask, p, snap))
                best = torch.where(improved, mse, best)
                since = 0
            else:
                since += 1
            if (
                since > cfg.patience
                or (max_epochs and epoch >= max_epochs)
                or (max_batches and done >= max_batches)
            ):
                break
        with torch.no_grad():
            for snap, p in zip(snapshot, params, strict=True):
                p.copy_(snap)
        self.eval()
        final = self.member_mse(x_ho, y_ho)
        self.holdout_mse.copy_(final)
        elites = torch.argsort(final)[: cfg.elites]
        self.elite_idx.copy_(elites)
        self.num_fits += 1
        return FitResult(
            epochs=epoch,
            train_loss=train_loss,
            holdout_mse=float(final[elites].mean()),
            member_holdout_mse=tuple(final.tolist()),
            elites=tuple(elites.tolist()),
            n_train=n_train,
            n_holdout=n_hold,
            seconds=time.perf_counter() - t0,
            batches=done,
        )


class EnsembleStep:
    """A rollout step function over a :class:`ProbabilisticEnsemble` in one propagation mode.

    ``step(obs [B, O], act [B, A]) -> (next_obs [B, O], reward [B] | None)``. For ``tsinf`` the
    row -> elite assignment is drawn on the first call and kept while ``B`` stays the same, so
    make one ``EnsembleStep`` per rollout (planning call). Keeps the autograd graph.
    """

    def __init__(
        self,
        model: ProbabilisticEnsemble,
        mode: Propagation = "ts1",
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if mode not in ("ts1", "tsinf", "mean"):
            raise ValueError(f"unknown propagation mode {mode!r}; use 'ts1', 'tsinf' or 'mean'")
        self.model, self.mode, self.sample, self.generator = model, mode, sample, generator
        self.assignment: Assignment | None = None

    def __call__(self, obs: torch.Tensor, act: torch.Tensor) -> StepOutput:
        assignment = None
        if self.mode == "tsinf":
            if self.assignment is None or self.assignment.batch != obs.shape[0]:
                self.assignment = self.model.assign(obs.shape[0], self.generator)
            assignment = self.assignment
        return self.model.step(
            obs,
            act,
            mode=self.mode,
            sample=self.sample,
            generator=self.generator,
            assignment=assignment,
        )
