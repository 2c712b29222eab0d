"""The batched MCTS (``algorithms/planners/mcts.py``) against a plain one-object-per-node search
written from muzero-general's ``MCTS.run`` (single player), on a fixed random model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms.planners.mcts import MCTSConfig, search, select_action

H, A = 5, 3


class ToyModel:
    """A fixed random recurrent model: tanh-linear dynamics, linear reward, policy and value."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.wd = torch.randn(H + A, H, generator=g)
        self.wr = torch.randn(H + A, generator=g)
        self.wp = torch.randn(H, A, generator=g)
        self.wv = torch.randn(H, generator=g)

    def recurrent(self, h: torch.Tensor, a: torch.Tensor):
        x = torch.cat([h, torch.nn.functional.one_hot(a, A).float()], -1)
        h2 = torch.tanh(x @ self.wd)
        return x @ self.wr, h2, h2 @ self.wp, h2 @ self.wv


class Node:
    def __init__(self, prior: float) -> None:
        self.prior, self.visits, self.value_sum, self.reward = prior, 0, 0.0, 0.0
        self.children: dict[int, Node] = {}
        self.hidden: torch.Tensor | None = None

    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


def reference(model: ToyModel, h0, logits0, cfg: MCTSConfig, root_prior=None):
    """One tree, node objects, muzero-general's order of operations (ties: lowest index)."""
    root = Node(0.0)
    root.hidden = h0
    p = torch.softmax(logits0, -1) if root_prior is None else root_prior
    root.children = {a: Node(float(p[a])) for a in range(A)}
    lo, hi = math.inf, -math.inf

    def norm(v: float) -> float:
        return (v - lo) / (hi - lo) if hi > lo else v

    for _ in range(cfg.num_simulations):
        node, path = root, [root]
        while True:
            n_parent = node.visits
            best, best_score, best_a = None, -math.inf, -1
            for a, child in node.children.items():
                c = math.log((n_parent + cfg.pb_c_base + 1) / cfg.pb_c_base) + cfg.pb_c_init
                u = c * math.sqrt(n_parent) / (child.visits + 1) * child.prior
                q = norm(child.reward + cfg.discount * child.value()) if child.visits else 0.0
                if q + u > best_score:
                    best, best_score, best_a = child, q + u, a
            action, node = best_a, best
            path.append(node)
            if node.hidden is None:
                break
        parent = path[-2]
        r, h2, lg, v = model.recurrent(parent.hidden[None], torch.tensor([action]))
        node.reward, node.hidden = float(r[0]), h2[0]
        pr = torch.softmax(lg[0], -1)
        node.children = {a: Node(float(pr[a])) for a in range(A)}
        g = float(v[0])
        for nd in reversed(path):
            nd.value_sum += g
            nd.visits += 1
            q = nd.reward + cfg.discount * nd.value()
            lo, hi = min(lo, q), max(hi, q)
            g = nd.reward + cfg.discount * g
    counts = [root.children[a].visits for a in range(A)]
    return counts, root.value()


@pytest.mark.parametrize("sims", [1, 2, 10, 50])
def test_batched_search_matches_the_node_by_node_search(sims):
    model = ToyModel()
    cfg = MCTSConfig(num_simulations=sims, discount=0.9)
    g = torch.Generator().manual_seed(1)
    h0, logits0 = torch.randn(4, H, generator=g), torch.randn(4, A, generator=g)
    out = search(model.recurrent, h0, logits0, cfg)
    assert out.visit_counts.sum(-1).tolist() == [sims] * 4
    for i in range(4):
        counts, value = reference(model, h0[i], logits0[i], cfg)
        assert out.visit_counts[i].tolist() == counts
        assert float(out.root_value[i]) == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_root_noise_is_mixed_into_the_prior_and_drawn_from_the_generator():
    model = ToyModel(2)
    cfg = MCTSConfig(num_simulations=20)
    h0, logits0 = torch.randn(3, H), torch.randn(3, A)
    a = search(model.recurrent, h0, logits0, cfg, noise=True, rng=np.random.default_rng(5))
    b = search(model.recurrent, h0, logits0, cfg, noise=True, rng=np.random.default_rng(5))
    assert torch.equal(a.visit_counts, b.visit_counts)
    clean = torch.softmax(logits0, -1)
    assert not torch.allclose(a.root_prior, clean)
    torch.testing.assert_close(a.root_prior.sum(-1), torch.ones(3))
    for i in range(3):  # the search then runs on the noisy prior
        counts, _ = reference(model, h0[i], logits0[i], cfg, root_prior=a.root_prior[i])
        assert a.visit_counts[i].tolist() == counts
    with pytest.raises(ValueError, match="rng"):
        search(model.recurrent, h0, logits0, cfg, noise=True)


def test_select_action_by_temperature():
    counts = torch.tensor([[1.0, 7.0, 2.0], [5.0, 5.0, 0.0]])
    rng = np.random.default_rng(0)
    assert select_action(counts, 0.0, rng).tolist() == [1, 0]
    draws = np.stack([select_action(counts, 1.0, rng) for _ in range(4000)])
    np.testing.assert_allclose((draws[:, 0] == 1).mean(), 0.7, atol=0.03)
    assert set(draws[:, 1]) == {0, 1}  # never the unvisited action
    sharp = np.stack([select_action(counts, 0.25, rng) for _ in range(2000)])
    assert (sharp[:, 0] == 1).mean() > 0.95  # (7^4 / (1 + 7^4 + 2^4) = 0.993)
    uniform = np.stack([select_action(counts, math.inf, rng) for _ in range(3000)])
    np.testing.assert_allclose(np.bincount(uniform[:, 1], minlength=3) / 3000, 1 / 3, atol=0.04)
