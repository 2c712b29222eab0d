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

**Gumbel MuZero** (``MCTSConfig.gumbel``; Danihelka et al. 2022, "Policy improvement by planning
with Gumbel", ICLR; DeepMind's mctx ``gumbel_muzero_policy``) changes only the selection and what
the search returns, over the same arrays and backup:

- the root samples ``m = min(max_considered, A)`` actions without replacement by Gumbel-top-k
  (``g ~ Gumbel(0, 1)`` in training, ``g = 0`` otherwise) and shares the simulations among them
  by Sequential Halving: simulation ``k`` descends into the action with visit count
  ``considered[k]`` of highest ``g(a) + logits(a) + sigma(q(a))`` (paper eq. 8; mctx
  ``seq_halving.py``'s visit sequence);
- below the root, the deterministic rule of the paper's section 5:
  ``argmax_a pi'(a) - N(a) / (1 + sum_b N(b))`` with ``pi' = softmax(logits + sigma(q))``;
- ``q`` is the *completed* Q of the node: ``r + discount V(child)`` for visited actions, the mixed
  value ``(v_net + sum N * sum_visited pi q / sum_visited pi) / (1 + sum N)`` for the others
  (paper appendix D), rescaled to [0, 1] over the node's actions, and
  ``sigma(q) = (c_visit + max_b N(b)) c_scale q``;
- it returns the action (the most visited of highest ``g + logits + sigma(q)``) and the policy
  target ``softmax(logits + sigma(q))`` at the root, which improves on the prior for any number of
  simulations, where the visit counts follow the prior when Q differs little.

No Dirichlet noise: the Gumbel draw is the exploration at the root.

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
    gumbel: bool = False
    """Gumbel MuZero's root (Sequential Halving) and interior selection and its completed-Q policy
    target (module docstring); False: pUCT, the paper's search."""
    max_considered: int = 16
    """Gumbel: actions sampled at the root (mctx ``max_num_considered_actions``: 16)."""
    c_visit: float = 50.0
    """Gumbel: ``c_visit`` of ``sigma`` (paper eq. 8 and mctx ``maxvisit_init``: 50)."""
    c_scale: float = 0.1
    """Gumbel: ``c_scale`` of ``sigma`` (paper and mctx ``value_scale``: 0.1)."""


class SearchResult(NamedTuple):
    """What a search returns, per tree."""

    visit_counts: Tensor
    """``[B, A]`` visits of the root's children (the policy target)."""
    root_value: Tensor
    """``[B]`` mean backed-up value at the root (the value target's bootstrap)."""
    root_prior: Tensor
    """``[B, A]`` the root prior the search used (noise included)."""
    policy: Tensor | None = None
    """Gumbel: ``[B, A]`` the policy target ``softmax(logits + sigma(completed q))`` at the root;
    None for pUCT (its target: the normalised visit counts)."""
    action: Tensor | None = None
    """Gumbel: ``[B]`` the action Sequential Halving chose; None for pUCT (see
    :func:`select_action`)."""


@njit(cache=True)
def _descend(i, cur, best, children, node, act):
    """Tree ``i`` steps from ``cur`` along ``best``: the child, or -1 after writing the
    unexpanded edge into ``node [B]`` and ``act [B]``."""
    nxt = children[i, cur, best]
    if nxt < 0:
        node[i], act[i] = cur, best
    return nxt


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
            cur = _descend(i, cur, best, children, node, act)
            if cur < 0:
                break


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


_TINY = np.finfo(np.float64).tiny


@njit(cache=True)
def _sigma_q(i, cur, logp, edge_visits, edge_q, raw_value, c_visit, c_scale, out):
    """``sigma(completed q)`` of node ``cur`` of tree ``i`` into ``out [A]`` (Gumbel MuZero's
    appendix D mixed value for the unvisited actions, min-max rescaled over the node's actions)."""
    a = out.shape[0]
    n_sum, n_max, p_sum, pq = 0.0, 0.0, 0.0, 0.0
    for j in range(a):
        nv = edge_visits[i, cur, j]
        n_sum += nv
        n_max = max(n_max, nv)
        if nv > 0:
            p = max(math.exp(logp[i, cur, j]), _TINY)
            p_sum += p
            pq += p * edge_q[i, cur, j]
    v_mix = raw_value[i, cur]
    if n_sum > 0:
        v_mix = (v_mix + n_sum * pq / p_sum) / (n_sum + 1.0)
    lo, hi = math.inf, -math.inf
    for j in range(a):
        q = edge_q[i, cur, j] if edge_visits[i, cur, j] > 0 else v_mix
        out[j] = q
        lo, hi = min(lo, q), max(hi, q)
    scale = (c_visit + n_max) * c_scale / max(hi - lo, 1e-8)
    for j in range(a):
        out[j] = (out[j] - lo) * scale


@njit(cache=True)
def _root_pick(i, target, gumbel, logp, edge_visits, sigma):
    """Sequential Halving's choice at tree ``i``'s root: among the actions visited ``target``
    times, the highest ``g + logits + sigma(q)`` (mctx ``score_considered``; lowest index on ties,
    action 0 if none has that count)."""
    a = sigma.shape[0]
    top = -math.inf
    for j in range(a):
        top = max(top, logp[i, 0, j])
    best, best_score = 0, -math.inf
    for j in range(a):
        if edge_visits[i, 0, j] == target:
            score = max(-1e9, gumbel[i, j] + logp[i, 0, j] - top + sigma[j])
            if score > best_score:
                best, best_score = j, score
    return best


@njit(cache=True)
def _select_gumbel(
    logp, children, edge_visits, edge_q, raw_value, gumbel, considered, c_visit, c_scale, node, act
):
    """Each tree's descent by Gumbel MuZero's rules (module docstring) to an unexpanded edge."""
    b, _, a = children.shape
    sigma = np.empty(a)
    for i in range(b):
        cur = 0
        while True:
            _sigma_q(i, cur, logp, edge_visits, edge_q, raw_value, c_visit, c_scale, sigma)
            if cur == 0:
                done = 0.0
                for j in range(a):
                    done += edge_visits[i, 0, j]
                best = _root_pick(i, considered[int(done)], gumbel, logp, edge_visits, sigma)
            else:
                n_sum, top = 0.0, -math.inf
                for j in range(a):
                    n_sum += edge_visits[i, cur, j]
                    top = max(top, logp[i, cur, j] + sigma[j])
                z = 0.0
                for j in range(a):
                    z += math.exp(logp[i, cur, j] + sigma[j] - top)
                best, best_score = 0, -math.inf
                for j in range(a):
                    p = math.exp(logp[i, cur, j] + sigma[j] - top) / z
                    score = p - edge_visits[i, cur, j] / (1.0 + n_sum)
                    if score > best_score:
                        best, best_score = j, score
            cur = _descend(i, cur, best, children, node, act)
            if cur < 0:
                break


@njit(cache=True)
def _gumbel_root(logp, edge_visits, edge_q, raw_value, gumbel, c_visit, c_scale, sigma, chosen):
    """After the search, each tree's root ``sigma(completed q)`` into ``sigma [B, A]`` and its
    action into ``chosen [B]``: the most visited of highest ``g + logits + sigma(q)``."""
    for i in range(sigma.shape[0]):
        _sigma_q(i, 0, logp, edge_visits, edge_q, raw_value, c_visit, c_scale, sigma[i])
        most = 0.0
        for j in range(sigma.shape[1]):
            most = max(most, edge_visits[i, 0, j])
        chosen[i] = _root_pick(i, most, gumbel, logp, edge_visits, sigma[i])


def considered_visits(max_considered: int, num_simulations: int) -> tuple[int, ...]:
    """Sequential Halving's schedule: the root visit count each simulation picks among (mctx
    ``get_sequence_of_considered_visits``): ``m`` actions get ``max(1, S / (ceil(log2 m) m))``
    visits each per round, then half of them (at least 2) the next round, until ``S``."""
    if max_considered <= 1:
        return tuple(range(num_simulations))
    rounds = math.ceil(math.log2(max_considered))
    seq: list[int] = []
    visits, m = [0] * max_considered, max_considered
    while len(seq) < num_simulations:
        for _ in range(max(1, num_simulations // (rounds * m))):
            seq.extend(visits[:m])
            visits[:m] = [v + 1 for v in visits[:m]]
        m = max(2, m // 2)
    return tuple(seq[:num_simulations])


def search(
    recurrent: RecurrentFn,
    root_hidden: Tensor,
    root_logits: Tensor,
    cfg: MCTSConfig,
    *,
    noise: bool = False,
    rng: np.random.Generator | None = None,
    root_value: Tensor | None = None,
) -> SearchResult:
    """``cfg.num_simulations`` simulations from ``B`` roots.

    Args:
        recurrent: the model step (:data:`RecurrentFn`), called once per simulation on ``[B]``
            rows, under ``torch.no_grad``.
        root_hidden: ``[B, H]`` the roots' states (the representation of the observations).
        root_logits: ``[B, A]`` the prediction's policy logits at the roots.
        noise: mix Dirichlet noise into the root prior (training); Gumbel: draw the root's
            Gumbel variables (else ``g = 0``).
        rng: draws that noise.
        root_value: ``[B]`` the prediction's values at the roots (Gumbel's mixed value needs
            them; pUCT does not).
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
    if noise and rng is None:
        raise ValueError("search(noise=True) needs rng, the trial's generator")
    if cfg.gumbel:
        if root_value is None:
            raise ValueError("search with cfg.gumbel needs root_value, the roots' predicted values")
        raw_value = np.zeros((b, n))
        raw_value[:, 0] = root_value.detach().double().cpu().numpy()
        logp = np.zeros((b, n, a))  # the nodes' policy logits (log-softmax)
        logp[:, 0] = np.log(np.maximum(root_p, _TINY))
        gumbel = rng.gumbel(size=(b, a)) if noise and rng is not None else np.zeros((b, a))
        considered = np.asarray(
            considered_visits(min(cfg.max_considered, a), cfg.num_simulations), dtype=np.int64
        )
    elif noise and rng is not None:
        frac = cfg.exploration_fraction
        root_p = root_p * (1 - frac) + rng.dirichlet([cfg.dirichlet_alpha] * a, size=b) * frac
    hidden[:, 0] = root_hidden
    prior[:, 0] = root_p

    with torch.no_grad():
        for sim in range(1, n):
            if cfg.gumbel:
                _select_gumbel(logp, children, edge_visits, edge_q, raw_value, gumbel,
                               considered, cfg.c_visit, cfg.c_scale, node, act)  # fmt: skip
            else:
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
            if cfg.gumbel:
                raw_value[:, sim] = host[:, a + 1]
                logp[:, sim] = np.log(np.maximum(host[:, :a], _TINY))
            parent[:, sim] = node
            action[:, sim] = act
            children[rows, node, act] = sim
            _backup(sim, host[:, a + 1], visits, value_sum, reward, parent, action,
                    edge_visits, edge_q, vmin, vmax, cfg.discount)  # fmt: skip

    root_kids = children[:, 0]  # [B, A]
    counts = np.where(root_kids >= 0, visits[rows[:, None], np.maximum(root_kids, 0)], 0.0)
    improved = chosen = None
    if cfg.gumbel:
        sigma, picks = np.empty((b, a)), np.empty(b, dtype=np.int64)
        _gumbel_root(logp, edge_visits, edge_q, raw_value, gumbel, cfg.c_visit, cfg.c_scale,
                     sigma, picks)  # fmt: skip
        improved = torch.softmax(torch.from_numpy(logp[:, 0] + sigma), -1).float()
        chosen = torch.from_numpy(picks)
    return SearchResult(
        torch.from_numpy(counts).float(),
        torch.from_numpy(value_sum[:, 0] / np.maximum(visits[:, 0], 1)).float(),
        torch.from_numpy(root_p).float(),
        improved,
        chosen,
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
