"""Discrete regression of scalars: two-hot targets over a fixed support, soft cross-entropy.

TD-MPC2 (Hansen et al. 2024; nicklashansen/tdmpc2 ``tdmpc2/common/math.py``) and DreamerV3
regress rewards and values this way: a scalar ``x`` becomes ``symlog(x)`` clipped to
``[vmin, vmax]``, spread over the two nearest of ``bins`` evenly spaced support points (weights
proportional to closeness, summing to 1); a head's ``bins`` logits are trained with the cross
entropy against that target and decoded as ``symexp`` of the softmax-weighted support. The loss
does not grow with the scale of the returns, which is why one set of hyperparameters fits tasks
with rewards of very different sizes. MuZero's categorical heads are the same with its own
invertible transform.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor


def symlog(x: Tensor) -> Tensor:
    """``sign(x) log(1 + |x|)``."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) (exp(|x|) - 1)``."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


#: MuZero's ``epsilon`` in :func:`muzero_h` (Pohlen et al. 2018; the MuZero pseudocode: 0.001).
MUZERO_EPS = 1e-3


def muzero_h(x: Tensor) -> Tensor:
    """MuZero's invertible value transform ``sign(x) (sqrt(|x| + 1) - 1) + eps x``."""
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + 1) - 1) + MUZERO_EPS * x


def muzero_h_inv(y: Tensor) -> Tensor:
    """Inverse of :func:`muzero_h` (muzero-general ``support_to_scalar``'s closed form)."""
    e = MUZERO_EPS
    root = (torch.sqrt(1 + 4 * e * (torch.abs(y) + 1 + e)) - 1) / (2 * e)
    return torch.sign(y) * (root**2 - 1)


class TwoHot:
    """Two-hot encoding over ``bins`` support points in ``[vmin, vmax]`` of a transformed space.

    Shapes: scalars ``[...]``, logits ``[..., bins]``. TD-MPC2: 101 bins in ``[-10, 10]`` of
    ``symlog``; MuZero (muzero-general's CartPole): the 21 integers in ``[-10, 10]`` of
    :func:`muzero_h` (``transform=muzero_h, inverse=muzero_h_inv``).
    """

    def __init__(
        self,
        bins: int = 101,
        vmin: float = -10.0,
        vmax: float = 10.0,
        *,
        transform: Callable[[Tensor], Tensor] = symlog,
        inverse: Callable[[Tensor], Tensor] = symexp,
    ) -> None:
        if bins < 2 or not vmin < vmax:
            raise ValueError(f"need bins >= 2 and vmin < vmax, got {bins}, {vmin}, {vmax}")
        self.bins, self.vmin, self.vmax = bins, vmin, vmax
        self.transform, self.inverse = transform, inverse
        self.bin_size = (vmax - vmin) / (bins - 1)
        self._support: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def support(self, like: Tensor) -> Tensor:
        """``[bins]`` support points (symlog space) on ``like``'s device and dtype."""
        key = (like.device, like.dtype)
        if key not in self._support:
            self._support[key] = torch.linspace(
                self.vmin, self.vmax, self.bins, device=like.device, dtype=like.dtype
            )
        return self._support[key]

    def encode(self, x: Tensor) -> Tensor:
        """``[...] -> [..., bins]`` two-hot targets of ``transform(x)`` (clipped to the
        support)."""
        pos = (self.transform(x).clamp(self.vmin, self.vmax) - self.vmin) / self.bin_size
        low = pos.floor().clamp(max=self.bins - 2)
        upper_w = (pos - low).unsqueeze(-1)
        idx = low.long().unsqueeze(-1)
        out = torch.zeros(*x.shape, self.bins, device=x.device, dtype=x.dtype)
        out.scatter_(-1, idx, 1.0 - upper_w)
        return out.scatter_(-1, idx + 1, upper_w)

    def decode(self, logits: Tensor) -> Tensor:
        """``[..., bins] -> [...]``: ``inverse`` of the expected support point."""
        probs = torch.softmax(logits, dim=-1)
        return self.inverse((probs * self.support(logits)).sum(-1))

    def cross_entropy(self, logits: Tensor, target: Tensor) -> Tensor:
        """``[..., bins]``, ``[...] -> [...]``: soft cross-entropy against :meth:`encode`."""
        return -(self.encode(target) * torch.log_softmax(logits, dim=-1)).sum(-1)
