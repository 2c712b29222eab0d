"""TD-MPC2's implicit world model: a latent model trained only through what control needs.

Hansen et al. 2024, nicklashansen/tdmpc2 ``tdmpc2/common/world_model.py``. Five networks on a
latent ``z`` (SimNorm-normalised, so it lives on a product of simplices):

- ``encode(obs) -> z``; ``next(z, a) -> z'`` (latent dynamics);
- ``reward(z, a) -> logits [bins]`` (two-hot, :mod:`algorithms.models.twohot`);
- ``pi(z) -> a`` (tanh-Gaussian policy prior, log-std squashed into ``[log_std_min,
  log_std_max]``);
- ``Q(z, a) -> logits [num_q, bins]``: an ensemble with dropout, one batched op
  (:class:`~algorithms.models.layers.EnsembleNormedMLP`), Polyak-averaged target copies;
- ``termination(z) -> p`` only for episodic tasks (``episodic=True``);
- ``decode(z) -> obs`` only for the value-equivalence ablation (``reconstruction_coef > 0``): an
  observation decoder TD-MPC2 does not have.

No network ever reconstructs observations in the default form: the latent is shaped by the
latent consistency, reward, value (and termination) losses alone, which makes the model
value-equivalent in the sense of Grimm et al. 2020 rather than a predictor of observations.

Shapes: ``z [..., L]``, ``a [..., A]`` in ``[-1, 1]`` (the agent maps env actions), logits
``[..., bins]``. Every random draw (policy noise, Q dropout, Q-head subsets) uses the generator
given at construction (the trial's).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from algorithms.models.layers import EnsembleNormedMLP, SimNorm, normed_mlp, tdmpc2_init_
from algorithms.models.twohot import TwoHot

Tensor = torch.Tensor

#: tdmpc2 ``common/__init__.py`` ``MODEL_SIZE`` (millions of parameters): encoder width, MLP
#: width, latent size, encoder layers, Q heads (5 where not given).
MODEL_SIZES: dict[int, dict[str, int]] = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    19: {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    48: {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    317: {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}


@dataclass(frozen=True)
class WorldModelShape:
    """Sizes of :class:`WorldModel` (the agent's config resolves them from ``model_size``)."""

    obs_dim: int
    act_dim: int
    enc_dim: int
    mlp_dim: int
    latent_dim: int
    num_enc_layers: int
    num_q: int
    simnorm_dim: int = 8
    dropout: float = 0.01
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    episodic: bool = False
    decoder: bool = False


class WorldModel(nn.Module):
    """TD-MPC2's world model (see the module docstring).

    Args:
        shape: the sizes.
        twohot: the reward and value heads' discrete regression.
        generator: the trial's generator for every random draw.
    """

    def __init__(
        self, shape: WorldModelShape, twohot: TwoHot, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        s = shape
        if s.latent_dim % s.simnorm_dim:
            raise ValueError(
                f"latent_dim {s.latent_dim} must be a multiple of simnorm_dim {s.simnorm_dim}"
            )
        self.shape, self.twohot, self.generator = s, twohot, generator
        za, mlp2 = s.latent_dim + s.act_dim, [s.mlp_dim] * 2
        enc_hidden = [s.enc_dim] * max(s.num_enc_layers - 1, 1)
        self._encoder = normed_mlp(
            s.obs_dim, enc_hidden, s.latent_dim, out_act=SimNorm(s.simnorm_dim)
        )
        self._dynamics = normed_mlp(za, mlp2, s.latent_dim, out_act=SimNorm(s.simnorm_dim))
        self._reward = normed_mlp(za, mlp2, twohot.bins)
        self._pi = normed_mlp(s.latent_dim, mlp2, 2 * s.act_dim)
        self._Qs = EnsembleNormedMLP(
            s.num_q, za, mlp2, twohot.bins, dropout=s.dropout, generator=generator
        )
        self._termination = normed_mlp(s.latent_dim, mlp2, 1) if s.episodic else None
        self._decoder = normed_mlp(s.latent_dim, [s.enc_dim], s.obs_dim) if s.decoder else None
        tdmpc2_init_(self)
        # the reward head and every Q head start at zero (tdmpc2 ``init.zero_``)
        nn.init.zeros_(self._reward[-1].weight)
        nn.init.zeros_(self._Qs.out.weight)
        self._target_Qs = copy.deepcopy(self._Qs).requires_grad_(False)
        self._target_Qs.generator = generator

    # ------------------------------------------------------------------ parameter groups
    def model_parameters(self) -> list[dict]:
        """Adam groups of everything but the policy (encoder first: its learning rate is scaled)."""
        groups = [
            list(self._encoder.parameters()),
            [
                *self._dynamics.parameters(),
                *self._reward.parameters(),
                *self._Qs.parameters(),
                *(self._termination.parameters() if self._termination is not None else ()),
                *(self._decoder.parameters() if self._decoder is not None else ()),
            ],
        ]
        return [{"params": g} for g in groups]

    def train(self, mode: bool = True) -> WorldModel:
        super().train(mode)
        self._target_Qs.train(False)  # target Qs never drop out (tdmpc2 ``WorldModel.train``)
        return self

    @torch.no_grad()
    def soft_update_target_Q(self, tau: float) -> None:
        """Polyak averaging of the target Q heads: ``target += tau * (online - target)``."""
        for t, p in zip(self._target_Qs.parameters(), self._Qs.parameters(), strict=True):
            t.lerp_(p, tau)

    # ------------------------------------------------------------------ the named methods
    def encode(self, obs: Tensor) -> Tensor:
        """``[..., O] -> [..., L]``."""
        return self._encoder(obs)

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        """``[..., L], [..., A] -> [..., L]``: the latent after action ``a``."""
        return self._dynamics(torch.cat([z, a], dim=-1))

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """``-> [..., bins]`` logits of the reward of ``a`` in ``z``."""
        return self._reward(torch.cat([z, a], dim=-1))

    def termination(self, z: Tensor, *, logits: bool = False) -> Tensor:
        """``[..., L] -> [..., 1]`` probability (or logit) that ``z`` is terminal."""
        if self._termination is None:
            raise RuntimeError("the world model has no termination head: set episodic=true")
        out = self._termination(z)
        return out if logits else torch.sigmoid(out)

    def decode(self, z: Tensor) -> Tensor:
        """``[..., L] -> [..., O]`` (the reconstruction ablation only)."""
        if self._decoder is None:
            raise RuntimeError("the world model has no decoder: set reconstruction_coef > 0")
        return self._decoder(z)

    def pi(self, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """A sample of the policy prior at ``z [..., L]``: action ``[..., A]`` in ``[-1, 1]`` and
        ``mean`` (``tanh`` of the Gaussian mean), ``log_std``, ``log_prob`` (after the tanh),
        ``scaled_entropy`` ``[..., 1]``.

        ``scaled_entropy`` is ``-A * log N(eps; 0, std)`` before the squash, the quantity tdmpc2's
        ``-log_prob * scaled_log_prob / (log_prob + 1e-8)`` evaluates to (up to its 1e-8): the
        entropy bonus grows with the action dimension (tdmpc2 ``WorldModel.pi``)."""
        s = self.shape
        mu, raw = self._pi(z).chunk(2, dim=-1)
        log_std = s.log_std_min + 0.5 * (s.log_std_max - s.log_std_min) * (torch.tanh(raw) + 1)
        eps = torch.randn(mu.shape, generator=self.generator).to(mu.device, mu.dtype)
        gauss = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        action = torch.tanh(mu + eps * log_std.exp())
        log_prob = gauss - torch.log(torch.relu(1 - action.pow(2)) + 1e-6).sum(-1, keepdim=True)
        info = {
            "mean": torch.tanh(mu),
            "log_std": log_std,
            "log_prob": log_prob,
            "scaled_entropy": -gauss * s.act_dim,
        }
        return action, info

    def Q(
        self, z: Tensor, a: Tensor, *, target: bool = False, heads: Tensor | None = None
    ) -> Tensor:
        """``-> [num_q, ..., bins]`` logits of every Q head (the target copies with ``target``);
        with ``heads`` (indices ``[M]``), ``[M, ..., bins]`` of those heads only."""
        za = torch.cat([z, a], dim=-1)
        lead = za.shape[:-1]
        out = self._q_net(target)(za.reshape(-1, za.shape[-1]), heads)
        return out.reshape(out.shape[0], *lead, -1)

    def _q_net(self, target: bool) -> EnsembleNormedMLP:
        return self._target_Qs if target else self._Qs

    def q_value(self, z: Tensor, a: Tensor, *, reduce: str, target: bool = False) -> Tensor:
        """``[..., 1]``: the ``min`` or ``avg`` of two Q heads drawn at random (all heads when
        there are two), decoded (tdmpc2 ``WorldModel.Q`` ``return_type='min' | 'avg'``). The
        reference computes every head and keeps two; here only the two are computed where no
        dropout mask is drawn (planning, targets: 3/5 of the Q work saved), with the same
        values (to the last bit on the suite's shapes; on odd ones the BLAS may round a smaller
        batch of products differently); with dropout active every head is computed, so the
        masks are drawn as there."""
        n = self.shape.num_q
        if n <= 2:
            logits = self.Q(z, a, target=target)
        else:
            idx = torch.randperm(n, generator=self.generator)[:2].to(z.device)
            if self._q_net(target).drops_out():
                logits = self.Q(z, a, target=target).index_select(0, idx)
            else:
                logits = self.Q(z, a, target=target, heads=idx)
        q = self.twohot.decode(logits).unsqueeze(-1)  # [2, ..., 1]
        return q.min(0).values if reduce == "min" else q.mean(0)


class RunningScale(nn.Module):
    """The policy loss's value scale (tdmpc2 ``common/scale.py``): an exponential moving average
    (rate ``tau``) of the 5-95 percentile range of ``Q`` in each batch, at least 1."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = tau
        self.register_buffer("value", torch.ones(()))

    @torch.no_grad()
    def update(self, q: Tensor) -> None:
        flat = q.detach().reshape(-1).float()
        lo, hi = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device))
        self.value.lerp_(torch.clamp(hi - lo, min=1.0), self.tau)

    def forward(self, q: Tensor) -> Tensor:
        return q / self.value
