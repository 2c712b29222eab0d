"""Per-dimension standardization fitted on data (PETS / MBPO ``TensorStandardScaler``)."""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """``(x - mean) / std`` per feature; ``mean``/``std`` are buffers (saved in ``state_dict``).

    Starts as the identity. :meth:`fit` sets the statistics from data; a feature whose std is
    below ``eps`` gets std 1 (as in PETS/MBPO, so constant features do not blow up). Every
    operation is differentiable in ``x`` (plain affine maps).
    """

    def __init__(self, dim: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the statistics from ``x``: ``[N, D]``."""
        x = x.reshape(-1, self.dim).to(self.mean)
        self.mean.copy_(x.mean(0))
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.ones_like(self.std)
        self.std.copy_(torch.where(std < self.eps, torch.ones_like(std), std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., D]`` standardized."""
        return (x - self.mean) / self.std

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``[..., D] -> [..., D]``."""
        return y * self.std + self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
