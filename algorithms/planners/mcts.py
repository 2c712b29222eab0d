"""Batched Monte Carlo tree search in a learned model (MuZero, Schrittwieser et al. 2020).

The search runs ``B`` independent trees side by side (one per root: evaluation episodes run
together, or several self-play environments of one trial) in preallocated tensors; there is no
Python object per node. A tree of ``S`` simulations holds at most ``S + 1`` expanded nodes, so
node ``k`` of every tree is the one expanded by simulation ``k`` (node 0 is the root):

- ``hidden [B, N, H]``: the model's state of the node; ``prior [B, N, A]``: its policy;
- ``reward [B, N]``: the reward predicted on the edge into the node (0 at the root);
- ``visits [B, N]``, ``value_sum [B, N]``; ``children [B, N, A]`` (``-1``: not expanded yet);
- ``parent [B, N]``, ``action [B, N]``: the edge into the node.

One simulation (muzero-general ``self_play.py`` ``MCTS.run``, single player):

1. **select**: from the root, follow ``argmax_a`` of pUCT until an action whose child is not
   expanded, all trees at once (a loop over tree depth, vectorised over the ``B`` trees)::

       score(s, a) = Qn(s, a) + P(s, a) sqrt(N(s)) / (1 + N(s, a)) (c_init + log((N(s) + c_base + 1) / c_base))

   where ``Qn`` is ``r(s, a) + discount V(child)`` min-max normalised over the values seen in that
   tree, and 0 for an unvisited child;
2. **expand**: one batched model call ``recurrent(hidden of the parents, actions)`` for the ``B``
   leaves gives their rewards, states, policies and values;
3. **backup**: from each leaf to its root, ``value_sum += G``, ``visits += 1``, the tree's min-max
   bounds take ``r + discount V(node)``, and ``G <- r + discount G``.

Ties in the argmax go to the lowest action index (muzero-general breaks them at random); the root
gets Dirichlet noise in training (``noise=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

Tensor = torch.Tensor

#: ``recurrent(hidden [B, H], action [B] long) -> (reward [B], next_hidden [B, H],
#: policy_logits [B, A], value [B])``: one step of the learned model and its prediction heads.
RecurrentFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class MCTSConfig:
    """Search constants (muzero-general ``games/cartpole.py``, the MuZero pseudocode)."""

    num_simulations: int = 50
    """Simulations per search (cartpole.py: 50)."""
    discount: float = 0.997
    """Discount of the backed-up returns (cartpole.py: 0.997)."""
    pb_c_base: float = 19652.0
    """pUCT ``c_base`` (pseudocode and cartpole.py: 19652)."""
    pb_c_init: float = 1.25
    """pUCT ``c_init`` (pseudocode and cartpole.py: 1.25)."""
    dirichlet_alpha: float = 0.25
    """Root noise concentration (cartpole.py: 0.25)."""
    exploration_fraction: float = 0.25
    """Weight of the root noise in the root prior (cartpole.py: 0.25)."""


class SearchResult(NamedTuple):
    """What a search returns, per tree."""

    visit_counts: Tensor
    """``[B, A]`` visits of the root's children (the policy target)."""
    root_value: Tensor
    """``[B]`` mean backed-up value at the root (the value target's bootstrap)."""
    root_prior: Tensor
    """``[B, A]`` the root prior the search used (noise included)."""


def search(
    recurrent: RecurrentFn,
    root_hidden: Tensor,
    root_logits: Tensor,
    cfg: MCTSConfig,
    *,
    noise: bool = False,
    rng: np.random.Generator | None = None,
) -> SearchResult:
    """``cfg.num_simulations`` simulations from ``B`` roots.

    The tree's statistics live in NumPy arrays (a handful of microseconds per vectorised op on
    the small arrays of a search, against ~5 for a torch op), the hidden states in a torch tensor
    on the model's device; the model is called once per simulation for all ``B`` trees.

    Args:
        recurrent: the model step (:data:`RecurrentFn`), called once per simulation on ``[B]``
            rows, under ``torch.no_grad``.
        root_hidden: ``[B, H]`` the roots' states (the representation of the observations).
        root_logits: ``[B, A]`` the prediction's policy logits at the roots.
        noise: mix Dirichlet noise into the root prior (training).
        rng: draws that noise.
    """
    b, h = root_hidden.shape
    a = root_logits.shape[-1]
    n = cfg.num_simulations + 1
    rows = np.arange(b)
    disc = cfg.discount

    hidden = root_hidden.new_zeros(b, n, h)
    prior = np.zeros((b, n, a))
    reward = np.zeros((b, n))
    visits = np.zeros((b, n))
    value_sum = np.zeros((b, n))
    children = np.full((b, n, a), -1, dtype=np.int64)
    parent = np.zeros((b, n), dtype=np.int64)
    action = np.zeros((b, n), dtype=np.int64)
    # the edges' statistics, kept at the parent: N(s, a) and r(s, a) + discount V(child)
    edge_visits = np.zeros((b, n, a))
    edge_q = np.zeros((b, n, a))
    vmin = np.full(b, math.inf)
    vmax = np.full(b, -math.inf)

    root_p = torch.softmax(root_logits.detach().double(), -1).cpu().numpy()
    if noise:
        if rng is None:
            raise ValueError("search(noise=True) needs rng, the trial's generator")
        frac = cfg.exploration_fraction
        root_p = root_p * (1 - frac) + rng.dirichlet([cfg.dirichlet_alpha] * a, size=b) * frac
    hidden[:, 0] = root_hidden
    prior[:, 0] = root_p

    with torch.no_grad():
        for sim in range(1, n):
            # 1. select: descend while the chosen child is expanded
            node = np.zeros(b, dtype=np.int64)
            act = np.zeros(b, dtype=np.int64)
            active = np.ones(b, dtype=bool)
            while active.any():
                ev, eq = edge_visits[rows, node], edge_q[rows, node]  # [B, A]
                span = vmax - vmin
                ok = (span > 0)[:, None]
                qn = np.where(ok, (eq - vmin[:, None]) / np.where(ok, span[:, None], 1.0), eq)
                qn[ev == 0] = 0.0
                n_parent = visits[rows, node][:, None]  # [B, 1]
                c = np.log((n_parent + cfg.pb_c_base + 1) / cfg.pb_c_base) + cfg.pb_c_init
                u = c * np.sqrt(n_parent) / (ev + 1) * prior[rows, node]
                best = (qn + u).argmax(-1)  # [B], the lowest index among ties
                act = np.where(active, best, act)
                nxt = children[rows, node, act]
                active = active & (nxt >= 0)
                node = np.where(active, nxt, node)

            # 2. expand: one batched model call for the B leaves
            leaf_parent = torch.from_numpy(node).to(hidden.device)
            r, h_next, logits, v = recurrent(
                hidden[torch.arange(b, device=hidden.device), leaf_parent],
                torch.from_numpy(act).to(hidden.device),
            )
            hidden[:, sim] = h_next.to(hidden.dtype)
            prior[:, sim] = torch.softmax(logits.double(), -1).cpu().numpy()
            reward[:, sim] = r.double().cpu().numpy()
            parent[:, sim] = node
            action[:, sim] = act
            children[rows, node, act] = sim

            # 3. backup, leaf to root, every tree at once
            g = v.double().cpu().numpy()
            cur = np.full(b, sim, dtype=np.int64)
            active = np.ones(b, dtype=bool)
            while active.any():
                idx = (rows[active], cur[active])
                value_sum[idx] += g[active]
                visits[idx] += 1
                node_q = reward[idx] + disc * value_sum[idx] / visits[idx]
                vmin[active] = np.minimum(vmin[active], node_q)
                vmax[active] = np.maximum(vmax[active], node_q)
                inner = idx[1] != 0  # the edge into each node but the root
                edge = (idx[0][inner], parent[idx][inner], action[idx][inner])
                edge_q[edge] = node_q[inner]
                edge_visits[edge] = visits[idx][inner]
                g = reward[rows, cur] + disc * g
                active = active & (cur != 0)
                cur = np.where(active, parent[rows, cur], cur)

    root_kids = children[:, 0]  # [B, A]
    counts = np.where(root_kids >= 0, visits[rows[:, None], np.maximum(root_kids, 0)], 0.0)
    return SearchResult(
        torch.from_numpy(counts).float(),
        torch.from_numpy(value_sum[:, 0] / np.maximum(visits[:, 0], 1)).float(),
        torch.from_numpy(root_p).float(),
    )


def select_action(counts: Tensor, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """``[B, A]`` visit counts -> ``[B]`` actions (muzero-general ``select_action``): the most
    visited at temperature 0 (lowest index among ties), uniform at ``inf``, else sampled with
    probabilities ``counts^(1 / T)``."""
    c = counts.double().cpu().numpy()
    if temperature == 0:
        return c.argmax(-1)
    if math.isinf(temperature):
        return rng.integers(c.shape[-1], size=c.shape[0])
    p = c ** (1.0 / temperature)
    cdf = np.cumsum(p / p.sum(-1, keepdims=True), -1)
    u = rng.random((c.shape[0], 1))
    return np.minimum((cdf < u).sum(-1), c.shape[-1] - 1)  # inverse-CDF draw, every row at once
