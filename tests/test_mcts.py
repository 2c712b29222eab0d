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


# --- Gumbel MuZero (Danihelka et al. 2022): a node-by-node reference from the paper's rules


class GNode:
    def __init__(self, reward: float = 0.0) -> None:
        self.reward, self.visits, self.value_sum = reward, 0, 0.0
        self.logp: list[float] = []
        self.raw = 0.0
        self.children: dict[int, GNode] = {}
        self.hidden: torch.Tensor | None = None


def sigma_completed_q(node: GNode, cfg: MCTSConfig) -> list[float]:
    """Paper eq. 8 over the completed Q of appendix D, rescaled to [0, 1] over the actions."""
    n = [node.children[a].visits if a in node.children else 0 for a in range(A)]
    q = [
        node.children[a].reward
        + cfg.discount * node.children[a].value_sum / node.children[a].visits
        if n[a]
        else 0.0
        for a in range(A)
    ]
    p = [math.exp(x) for x in node.logp]
    seen = [a for a in range(A) if n[a]]
    v_mix = node.raw
    if seen:
        weighted = sum(p[a] * q[a] for a in seen) / sum(p[a] for a in seen)
        v_mix = (node.raw + sum(n) * weighted) / (sum(n) + 1)
    done = [q[a] if n[a] else v_mix for a in range(A)]
    lo, hi = min(done), max(done)
    return [(cfg.c_visit + max(n)) * cfg.c_scale * (x - lo) / max(hi - lo, 1e-8) for x in done]


def gumbel_reference(model: ToyModel, h0, logits0, v0: float, cfg: MCTSConfig, g, schedule):
    root = GNode()
    root.hidden, root.raw = h0, v0
    root.logp = torch.log_softmax(logits0.double(), -1).tolist()

    def visits(node: GNode, a: int) -> int:
        return node.children[a].visits if a in node.children else 0

    for k in range(cfg.num_simulations):
        node, path, action = root, [root], -1
        while True:
            s = sigma_completed_q(node, cfg)
            if node is root:  # Sequential Halving: the visit count simulation k considers
                top = max(node.logp)
                cand = [a for a in range(A) if visits(node, a) == schedule[k]]
                action = max(cand, key=lambda a: (g[a] + node.logp[a] - top + s[a], -a))
            else:  # section 5: argmax pi'(a) - N(a) / (1 + sum N)
                z = [math.exp(node.logp[a] + s[a]) for a in range(A)]
                total = sum(visits(node, a) for a in range(A))
                score = [z[a] / sum(z) - visits(node, a) / (1 + total) for a in range(A)]
                action = max(range(A), key=lambda a: (score[a], -a))
            if action not in node.children:
                break
            node = node.children[action]
            path.append(node)
        r, h2, lg, v = model.recurrent(node.hidden[None], torch.tensor([action]))
        leaf = GNode(float(r[0]))
        leaf.hidden, leaf.raw = h2[0], float(v[0])
        leaf.logp = torch.log_softmax(lg[0].double(), -1).tolist()
        node.children[action] = leaf
        path.append(leaf)
        ret = leaf.raw
        for nd in reversed(path):
            nd.value_sum += ret
            nd.visits += 1
            ret = nd.reward + cfg.discount * ret
    s = sigma_completed_q(root, cfg)
    counts = [visits(root, a) for a in range(A)]
    top = max(root.logp)
    best = [a for a in range(A) if counts[a] == max(counts)]
    chosen = max(best, key=lambda a: (g[a] + root.logp[a] - top + s[a], -a))
    policy = torch.softmax(torch.tensor(root.logp) + torch.tensor(s, dtype=torch.float64), -1)
    return counts, root.value_sum / root.visits, policy, chosen


def test_considered_visits_halve_the_actions_each_round():
    from algorithms.planners.mcts import considered_visits

    assert considered_visits(2, 6) == (0, 0, 1, 1, 2, 2)
    assert considered_visits(4, 8) == (0, 0, 0, 0, 1, 1, 2, 2)
    seq = considered_visits(3, 50)  # Acrobot's 3 actions at 50 simulations
    assert seq[:24] == tuple(v for v in range(8) for _ in range(3))
    assert seq[24:48] == tuple(v for v in range(8, 20) for _ in range(2))
    assert seq[48:] == (20, 20) and len(seq) == 50
    assert considered_visits(1, 4) == (0, 1, 2, 3)


@pytest.mark.parametrize("sims,noise", [(1, False), (5, True), (16, False), (50, True)])
def test_gumbel_search_matches_the_node_by_node_search(sims, noise):
    from algorithms.planners.mcts import considered_visits

    model = ToyModel(3)
    cfg = MCTSConfig(num_simulations=sims, discount=0.9, gumbel=True)
    gen = torch.Generator().manual_seed(4)
    b = 5
    h0, logits0, v0 = (torch.randn(b, H, generator=gen), torch.randn(b, A, generator=gen),
                       torch.randn(b, generator=gen))  # fmt: skip
    out = search(model.recurrent, h0, logits0, cfg, noise=noise, rng=np.random.default_rng(7),
                 root_value=v0)  # fmt: skip
    g = np.random.default_rng(7).gumbel(size=(b, A)) if noise else np.zeros((b, A))
    schedule = considered_visits(A, sims)
    assert out.visit_counts.sum(-1).tolist() == [sims] * b
    assert out.policy is not None and out.action is not None
    for i in range(b):
        counts, value, policy, chosen = gumbel_reference(
            model, h0[i], logits0[i], float(v0[i]), cfg, g[i], schedule
        )
        assert out.visit_counts[i].tolist() == counts
        assert float(out.root_value[i]) == pytest.approx(value, rel=1e-5, abs=1e-6)
        torch.testing.assert_close(out.policy[i], policy.float())
        assert int(out.action[i]) == chosen
    # no Dirichlet noise under Gumbel: the root prior is the network's
    torch.testing.assert_close(out.root_prior, torch.softmax(logits0, -1))


def test_gumbel_policy_target_improves_on_the_prior_where_q_differs():
    """The completed-Q target moves mass to the action with the highest Q however few visits
    (Gumbel MuZero's point), where visit counts at 3 simulations are one each."""
    model = ToyModel(5)
    cfg = MCTSConfig(num_simulations=3, discount=0.9, gumbel=True)
    h0, logits0 = torch.randn(8, H), torch.zeros(8, A)  # a uniform prior
    out = search(model.recurrent, h0, logits0, cfg, root_value=torch.zeros(8))
    assert out.visit_counts.tolist() == [[1.0] * A] * 8  # visit counts say nothing here
    r, _, _, v = model.recurrent(h0.repeat_interleave(A, 0), torch.arange(A).repeat(8))
    q = (r + 0.9 * v).reshape(8, A)
    assert torch.equal(out.policy.argmax(-1), q.argmax(-1))
    assert torch.equal(out.action, q.argmax(-1))  # g = 0: the best of the most visited
    assert bool((out.policy.max(-1).values > 1 / A + 0.2).all())


def test_gumbel_search_needs_the_root_values():
    model = ToyModel()
    with pytest.raises(ValueError, match="root_value"):
        search(model.recurrent, torch.randn(2, H), torch.randn(2, A), MCTSConfig(gumbel=True))
