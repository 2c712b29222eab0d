"""MuZero's three networks (Schrittwieser et al. 2020) in muzero-general's fully connected form
(``models.py`` ``MuZeroFullyConnectedNetwork``), for vector observations and discrete actions.

- representation ``h``: ``o -> s`` (an MLP, then min-max scaling of ``s`` to ``[0, 1]``);
- dynamics ``g``: ``(s, a) -> (r, s')`` (``s'`` from ``[s, onehot(a)]``, scaled again; the
  reward head reads ``s'``, as muzero-general's ``dynamics_reward_network``);
- prediction ``f``: ``s -> (p, v)`` (policy logits and value).

Reward and value are categorical over a support of ``2 * support_size + 1`` integers in the
space of MuZero's transform (:func:`~algorithms.models.twohot.muzero_h`); hidden layers use ELU,
as muzero-general's ``mlp``. Shapes: ``B`` rows, ``O`` observation dims, ``A`` actions, ``S`` the
encoding size, ``K`` support bins.
"""

from __future__ import annotations

import torch
from torch import nn

from algorithms.models.twohot import TwoHot, muzero_h, muzero_h_inv

Tensor = torch.Tensor


def elu_mlp(in_dim: int, widths: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear layers of ``widths`` with ELU between them, then a linear output (muzero-general
    ``mlp``: ELU hidden activations, identity output)."""
    dims = [in_dim, *widths, out_dim]
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(nn.ELU())
    return nn.Sequential(*mods)


def scale_hidden(s: Tensor) -> Tensor:
    """Min-max scale each row of ``s [B, S]`` to ``[0, 1]`` (muzero-general ``models.py``; a
    range below 1e-5 is widened by 1e-5)."""
    lo = s.min(-1, keepdim=True).values
    span = s.max(-1, keepdim=True).values - lo
    span = torch.where(span < 1e-5, span + 1e-5, span)
    return (s - lo) / span


class MuZeroNet(nn.Module):
    """``h``, ``g`` and ``f`` with their categorical heads.

    Args:
        obs_dim, num_actions: the task's.
        encoding: hidden-state size ``S`` (muzero-general CartPole: 8).
        representation, dynamics, reward, value, policy: hidden widths of each MLP (CartPole:
            ``()``, ``(16,)``, ``(16,)``, ``(16,)``, ``(16,)``).
        support_size: the value and reward support is the integers in
            ``[-support_size, support_size]`` of ``muzero_h`` space (CartPole: 10).
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        encoding: int,
        representation: tuple[int, ...],
        dynamics: tuple[int, ...],
        reward: tuple[int, ...],
        value: tuple[int, ...],
        policy: tuple[int, ...],
        support_size: int,
    ) -> None:
        super().__init__()
        self.num_actions = num_actions
        bins = 2 * support_size + 1
        self.support = TwoHot(
            bins, -float(support_size), float(support_size), transform=muzero_h,
            inverse=muzero_h_inv,
        )  # fmt: skip
        self.encoding = encoding
        self.lstm: nn.LSTMCell | None = None  # EfficientZero's value-prefix LSTM (add_value_prefix)
        self.horizon = 0
        self._h = elu_mlp(obs_dim, representation, encoding)
        self._g = elu_mlp(encoding + num_actions, dynamics, encoding)
        self._r = elu_mlp(encoding, reward, bins)
        self._p = elu_mlp(encoding, policy, num_actions)
        self._v = elu_mlp(encoding, value, bins)

    def add_projector(self, proj_hid: int, proj_out: int, pred_hid: int) -> None:
        """EfficientZero's SimSiam branch for the consistency loss (``config/atari/model.py``'s
        ``projection`` and ``projection_head``): a projector ``S -> proj_hid -> proj_hid ->
        proj_out`` (BatchNorm after each linear, ReLU after the first two) and a prediction
        head ``proj_out -> pred_hid -> proj_out`` (BatchNorm and ReLU in between). Built after
        the three networks, so that a MuZero without it draws the same initial weights."""
        bn = nn.BatchNorm1d
        self.projector = nn.Sequential(
            nn.Linear(self._g[-1].out_features, proj_hid), bn(proj_hid), nn.ReLU(),
            nn.Linear(proj_hid, proj_hid), bn(proj_hid), nn.ReLU(),
            nn.Linear(proj_hid, proj_out), bn(proj_out),
        )  # fmt: skip
        self.projection_head = nn.Sequential(
            nn.Linear(proj_out, pred_hid), bn(pred_hid), nn.ReLU(), nn.Linear(pred_hid, proj_out)
        )

    def project(self, s: Tensor, *, with_grad: bool) -> Tensor:
        """``[B, S] -> [B, proj_out]``: the projection with the prediction head (the online
        branch, ``with_grad``), or the projection alone and detached (the target branch)."""
        if with_grad:
            return self.projection_head(self.projector(s))
        with torch.no_grad():
            return self.projector(s)

    def add_value_prefix(self, lstm_hidden: int, widths: tuple[int, ...], horizon: int) -> None:
        """EfficientZero's value prefix (Ye et al. 2021; ``config/atari/model.py``): an LSTM cell
        over the unrolled states replaces the reward head, and its head (ReLU, then an ELU MLP of
        ``widths``) predicts the sum of the rewards since the last reset, every ``horizon``
        steps (``lstm_horizon_len``). EfficientZero puts a BatchNorm before the ReLU; here none
        (the search evaluates one state at a time). Built after the three networks."""
        bins = self._r[-1].out_features
        del self._r
        self.lstm = nn.LSTMCell(self.encoding, lstm_hidden)
        self._vp = elu_mlp(lstm_hidden, widths, bins)
        self.horizon = horizon

    def dynamics_prefix(
        self, s: Tensor, action: Tensor, lstm: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """``s [B, S]``, ``action [B]``, LSTM state ``(h, c)`` ``[B, L]`` each -> value-prefix
        logits ``[B, K]``, ``s' [B, S]`` and the next LSTM state (the LSTM reads ``s'``)."""
        assert self.lstm is not None
        nxt = scale_hidden(self._transition(s, action))
        h, c = self.lstm(nxt, lstm)
        return self._vp(torch.relu(h)), nxt, (h, c)

    def pack_root(self, s: Tensor) -> Tensor:
        """The search's node state of a root ``s [B, S]`` in value-prefix mode: ``[s, h, c,
        prefix, depth]`` ``[B, S + 2L + 2]`` (a zero LSTM state, prefix 0, depth 0), so that the
        tree search keeps the LSTM state per node without knowing of it."""
        assert self.lstm is not None
        return torch.cat([s, s.new_zeros(s.shape[0], 2 * self.lstm.hidden_size + 2)], -1)

    @torch.no_grad()
    def recurrent_packed(
        self, packed: Tensor, action: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`recurrent` over packed node states (:meth:`pack_root`): the LSTM state and the
        parent's prefix restart at depths that are multiples of ``horizon`` (the reset of
        training), and the edge's reward is the child's prefix minus the parent's."""
        assert self.lstm is not None
        n, hid = self.encoding, self.lstm.hidden_size
        s, h, c = packed[:, :n], packed[:, n : n + hid], packed[:, n + hid : n + 2 * hid]
        prefix, depth = packed[:, -2], packed[:, -1]
        keep = (torch.remainder(depth, self.horizon) != 0).to(packed.dtype)  # 0: a reset depth
        vp_logits, nxt, (h, c) = self.dynamics_prefix(
            s, action, (h * keep[:, None], c * keep[:, None])
        )
        p_logits, v_logits = self.predict(nxt)
        vp, v = self.value(torch.stack([vp_logits, v_logits]))
        child = torch.cat([nxt, h, c, vp[:, None], depth[:, None] + 1], -1)
        return vp - prefix * keep, child, p_logits, v

    def represent(self, obs: Tensor) -> Tensor:
        """``[B, O] -> [B, S]``."""
        return scale_hidden(self._h(obs))

    def _transition(self, s: Tensor, action: Tensor) -> Tensor:
        """``g``'s state network on ``[s, onehot(a)]``, before scaling: ``[B, S]``."""
        onehot = nn.functional.one_hot(action, self.num_actions).to(s.dtype)
        return self._g(torch.cat([s, onehot], -1))

    def dynamics(self, s: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """``s [B, S]``, ``action [B]`` (long) -> reward logits ``[B, K]``, ``s' [B, S]``."""
        nxt = self._transition(s, action)
        return self._r(nxt), scale_hidden(nxt)

    def predict(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``s [B, S]`` -> policy logits ``[B, A]``, value logits ``[B, K]``."""
        return self._p(s), self._v(s)

    def value(self, logits: Tensor) -> Tensor:
        """``[..., K] -> [...]`` scalar of a categorical head."""
        return self.support.decode(logits.float())

    @torch.no_grad()
    def recurrent(self, s: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The search's model step (:data:`~algorithms.planners.mcts.RecurrentFn`): reward
        ``[B]``, ``s' [B, S]``, policy logits ``[B, A]``, value ``[B]``."""
        r_logits, nxt = self.dynamics(s, action)
        p_logits, v_logits = self.predict(nxt)
        r, v = self.value(torch.stack([r_logits, v_logits]))  # one decode for both heads
        return r, nxt, p_logits, v
