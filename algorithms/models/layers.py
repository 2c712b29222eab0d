"""Batched building blocks: E independent linear layers run as one ``baddbmm``.

Used by the probabilistic dynamics ensemble (E = members) and by SAC's twin critics (E = 2), so
every member's forward and backward pass is one batched op per layer, never a Python loop.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``E`` linear maps applied to ``E`` batches at once: ``[E, B, in] -> [E, B, out]``."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same scheme as nn.Linear (Kaiming-uniform weights, uniform bias), member by member.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[E, B, in]`` (or ``[B, in]``, broadcast to every member). ``members``: the
        indices ``[M]`` of a subset of members to apply (``x`` then ``[M, B, in]`` or
        ``[B, in]``), the others not computed: each member's product is its own matrix product
        in the batch, so its values are the full ensemble's (to the last bit where the BLAS
        takes the same kernel path for the smaller batch)."""
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight.index_select(0, members), bias.index_select(0, members)
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class EnsembleMLP(nn.Module):
    """``E`` MLPs of identical shape evaluated together: ``[E, B, in] -> [E, B, out]``."""

    def __init__(
        self,
        members: int,
        in_features: int,
        out_features: int,
        hidden: int,
        layers: int,
        activation: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        dims = [in_features] + [hidden] * layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(members, i, o) for i, o in itertools.pairwise(dims)
        )
        self.act = activation()
        try:  # without autograd (targets, rollouts) the activation overwrites its input
            self.act_inplace: nn.Module = activation(inplace=True)  # type: ignore[call-arg]
        except TypeError:  # pragma: no cover - an activation without an in-place form
            self.act_inplace = self.act
        self.out = EnsembleLinear(members, dims[-1], out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act if torch.is_grad_enabled() else self.act_inplace
        for layer in self.hidden:
            x = act(layer(x))
        return self.out(x)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX-512 BF16 / AMX, via oneDNN).

    Without it a bf16 matmul is emulated and slower than fp32: callers choosing a precision for
    speed (tests, benchmark defaults) check this first.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return False


# ---------------------------------------------------------------------------------------------
# TD-MPC2's blocks (Hansen et al. 2024, nicklashansen/tdmpc2 ``tdmpc2/common/layers.py``):
# Linear -> (dropout) -> LayerNorm -> Mish, SimNorm latents, and the Q ensemble as one batched op.


class _Mish(torch.autograd.Function):
    """Mish with a hand-written backward: ``x tanh(softplus(x)) = x (1 - u^2) / (1 + u^2)`` with
    ``u = sigmoid(-x)``. ATen's CPU ``mish`` and ``mish_backward`` are 2-2.5x slower than these
    few vectorised ops (``benchmark/perf``: they were 30-40% of a TD-MPC2 step)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        u = torch.sigmoid(-x)
        u2 = u * u
        t = (1 - u2).div_(1 + u2)  # tanh(softplus(x))
        ctx.save_for_backward(x, u, t)
        return x * t

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, u, t = ctx.saved_tensors
        # d/dx = t + x (1 - t^2) sigmoid(x), sigmoid(x) = 1 - u
        return grad * (1 - t * t).mul_(1 - u).mul_(x).add_(t)


def mish(x: torch.Tensor) -> torch.Tensor:
    """``x tanh(softplus(x))`` (Misra 2019), equal to ``torch.nn.functional.mish`` to float
    rounding; fast on the CPU (see :class:`_Mish`)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Mish.apply(x)
    u = torch.sigmoid(-x)
    u.mul_(u)
    return x * (1 - u).div_(u.add_(1))


class Mish(nn.Module):
    """:func:`mish` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class SimNorm(nn.Module):
    """Simplicial normalisation (Lavoie et al. 2022): a softmax within each group of ``dim``
    consecutive features, ``[..., D] -> [..., D]`` (``D`` a multiple of ``dim``).

    The softmax runs over the groups transposed to ``[..., dim, D / dim]``: ATen's CPU softmax
    over a last dimension as short as 8 is ~9x slower than over a middle one (1.6 against 0.18
    ms for 512 latents, forward; 2.5 against 0.55 with backward), and SimNorm ends every
    latent step of the planner. The values equal the plain softmax's to float rounding (within
    3e-8)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.unflatten(-1, (-1, self.dim)).transpose(-1, -2).contiguous()
        return torch.softmax(groups, dim=-2).transpose(-1, -2).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class NormedLinear(nn.Linear):
    """``act(LayerNorm(dropout(x W + b)))``: TD-MPC2's building block (Mish by default)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        act: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = Mish() if act is None else act
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def normed_mlp(
    in_features: int,
    hidden: list[int],
    out_features: int,
    *,
    out_act: nn.Module | None = None,
) -> nn.Sequential:
    """TD-MPC2's ``mlp``: a :class:`NormedLinear` per hidden layer, then a plain ``Linear`` (or a
    :class:`NormedLinear` with ``out_act``, e.g. :class:`SimNorm`, for latent outputs)."""
    dims = [in_features, *hidden]
    layers: list[nn.Module] = [NormedLinear(i, o) for i, o in itertools.pairwise(dims)]
    if out_act is None:
        layers.append(nn.Linear(dims[-1], out_features))
    else:
        layers.append(NormedLinear(dims[-1], out_features, act=out_act))
    return nn.Sequential(*layers)


class EnsembleNormedMLP(nn.Module):
    """``E`` :func:`normed_mlp` heads of identical shape as one batched op per layer (TD-MPC2's
    Q ensemble, which the reference code vmaps): ``[B, in]`` or ``[E, B, in] -> [E, B, out]``.

    Dropout (rate ``dropout``, after the first layer only, as ``tdmpc2``'s Q heads) draws its
    masks from ``generator`` (the trial's), never from the global generator.
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        hidden: list[int],
        out_features: int,
        *,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        dims = [in_features, *hidden]
        self.hidden = nn.ModuleList(
            EnsembleLinear(members, i, o) for i, o in itertools.pairwise(dims)
        )
        self.ln_weight = nn.ParameterList(nn.Parameter(torch.ones(members, 1, o)) for o in dims[1:])
        self.ln_bias = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, o)) for o in dims[1:])
        self.out = EnsembleLinear(members, dims[-1], out_features)
        self.members, self.dropout, self.generator = members, dropout, generator

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.dropout
        mask = torch.rand(x.shape, generator=self.generator).to(x.device) < keep
        return x * mask / keep

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``members``: indices ``[M]`` of the heads to compute (``-> [M, B, out]``), the others
        skipped; only where no dropout mask is drawn (eval mode or ``dropout`` 0), since a
        subset's masks would consume the generator differently from the full ensemble's."""
        drop = self.drops_out()
        if members is not None and drop:
            raise ValueError("a subset of heads with dropout active: call on every head")
        for i, layer in enumerate(self.hidden):
            x = layer(x, members)
            if i == 0 and drop:
                x = self._drop(x)
            x = nn.functional.layer_norm(x, x.shape[-1:])
            w, b = self.ln_weight[i], self.ln_bias[i]
            if members is not None:
                w, b = w.index_select(0, members), b.index_select(0, members)
            x = mish(x * w + b)
        return self.out(x, members)

    def drops_out(self) -> bool:
        """Whether :meth:`forward` draws dropout masks now (training mode, ``dropout`` > 0)."""
        return bool(self.dropout and self.training)


def tdmpc2_init_(module: nn.Module) -> None:
    """TD-MPC2's ``weight_init`` (``common/init.py``): every linear weight (ensembles included,
    the fix of tdmpc2 e9f5932) truncated-normal with std 0.02, biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, EnsembleLinear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
