"""Batched building blocks: E independent linear layers run as one ``baddbmm``.

Used by the probabilistic dynamics ensemble (E = members) and by SAC's twin critics (E = 2), so
every member's forward and backward pass is one batched op per layer, never a Python loop.
"""

from __future__ import annotations

import itertools
import math

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[E, B, in]`` (or ``[B, in]``, broadcast to every member)."""
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return torch.baddbmm(self.bias, x, self.weight)

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
