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

Selection and backup are compiled loops (numba: :func:`_select`, :func:`_backup`) over the
tree's NumPy arrays, between two batched model calls; vectorised NumPy ops cost ~50 us per tree
level on these small arrays and made a 50-simulation search 5x slower (``benchmark/perf/mcts.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from numba import njit

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


@njit(cache=True)
def _select(visits, prior, children, edge_visits, edge_q, vmin, vmax, c_base, c_init, node, act):
    """Each tree's descent by pUCT to an unexpanded edge: writes its parent and action into
    ``node [B]`` and ``act [B]``."""
    b, _, a = children.shape
    for i in range(b):
        cur = 0
        while True:
            n_parent = visits[i, cur]
            c = (math.log((n_parent + c_base + 1.0) / c_base) + c_init) * math.sqrt(n_parent)
            span = vmax[i] - vmin[i]
            best, best_score = 0, -math.inf
            for j in range(a):
                n_edge = edge_visits[i, cur, j]
                qn = 0.0
                if n_edge > 0:
                    q = edge_q[i, cur, j]
                    qn = (q - vmin[i]) / span if span > 0 else q
                score = qn + c / (n_edge + 1.0) * prior[i, cur, j]
                if score > best_score:  # strict: the lowest index among ties
                    best, best_score = j, score
            nxt = children[i, cur, best]
            if nxt < 0:
                node[i], act[i] = cur, best
                break
            cur = nxt


@njit(cache=True)
def _backup(
    sim, value, visits, value_sum, reward, parent, action, edge_visits, edge_q, vmin, vmax, discount
):
    """Back ``value [B]`` up from node ``sim`` of each tree to its root."""
    for i in range(visits.shape[0]):
        cur, g = sim, value[i]
        while True:
            value_sum[i, cur] += g
            visits[i, cur] += 1.0
            q = reward[i, cur] + discount * value_sum[i, cur] / visits[i, cur]
            vmin[i] = min(vmin[i], q)
            vmax[i] = max(vmax[i], q)
            if cur == 0:
                break
            p = parent[i, cur]
            edge_q[i, p, action[i, cur]] = q
            edge_visits[i, p, action[i, cur]] = visits[i, cur]
            g = reward[i, cur] + discount * g
            cur = p


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
    dev = root_hidden.device
    trees = torch.arange(b, device=dev)

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
    node = np.zeros(b, dtype=np.int64)
    act = np.zeros(b, dtype=np.int64)

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
            _select(visits, prior, children, edge_visits, edge_q, vmin, vmax,
                    cfg.pb_c_base, cfg.pb_c_init, node, act)  # fmt: skip
            r, h_next, logits, v = recurrent(
                hidden[trees, torch.from_numpy(node).to(dev)], torch.from_numpy(act).to(dev)
            )
            hidden[:, sim] = h_next.to(hidden.dtype)
            # one host copy per simulation: [prior (A) | reward | value] of the B leaves
            host = (
                torch.cat(
                    [torch.softmax(logits.double(), -1), r.double()[:, None], v.double()[:, None]],
                    -1,
                )
                .cpu()
                .numpy()
            )
            prior[:, sim] = host[:, :a]
            reward[:, sim] = host[:, a]
            parent[:, sim] = node
            action[:, sim] = act
            children[rows, node, act] = sim
            _backup(sim, host[:, a + 1], visits, value_sum, reward, parent, action,
                    edge_visits, edge_q, vmin, vmax, cfg.discount)  # fmt: skip

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
