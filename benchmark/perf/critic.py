"""How well a ``tdmpc2`` trial's critic knows the returns of its own data: over a sample of the
replay's steps, in quantile bins of the discounted return-to-go its episode realised from each
step (``G``, at the agent's discount, no bootstrap; only steps at least ``2 / (1 - discount)``
steps before their episode's last stored one, where the cut-off leaves out at most
``discount^(2 / (1 - discount))``, about ``e^-2`` = 13%, of a constant reward's return), the
mean of

- ``Q(z,a)``: each Q head at the stored action (what the value loss fits),
- ``target``: the TD target ``r + discount * min of two target heads at (z', pi(z'))``,
- ``Q(z,pi)``: the heads' average at the policy prior's mean action (what the planner bootstraps),
- ``|h1-h2|`` and ``mean-min``: the disagreement of the two target heads the target's ``min``
  is drawn from, and how far below their mean the ``min`` lands (the target's per-step
  pessimism; in a steady state ``Q = (r - discount * mean-min) / (1 - discount)``),

in float32, and first under bf16 autocast when the trial ran with it.
A critic that tracks its returns has ``Q(z,a)`` near ``G`` in every bin; one that fits its
targets (``Q(z,a)`` near ``target``) but not ``G`` is biased by its own bootstraps::

    python -m benchmark.perf.critic results/<run>/trials/<trial> [--checkpoint]

``--checkpoint`` reads an unfinished trial's last checkpoint (read only). ``--updates N``
then continues the agent's own updates (model, Q heads, policy) on its frozen replay, no new
data, under ``--precision``, and prints the float32 table every ``--every`` updates: how far
the critic is from the fixed point of the data it has. Findings:
docs/algorithms/tdmpc2.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import time
from typing import Any

import numpy as np
import torch


def returns_to_go(reward: np.ndarray, episode: np.ndarray, discount: float) -> np.ndarray:
    """``[N]``: each step's discounted sum of its episode's rewards from that step on (steps
    stored in order, ``episode`` their episode ids)."""
    out = np.zeros(len(reward))
    acc, last = 0.0, None
    for t in range(len(reward) - 1, -1, -1):
        if episode[t] != last:
            acc, last = 0.0, episode[t]
        acc = float(reward[t]) + discount * acc
        out[t] = acc
    return out


def steps_left(episode: np.ndarray) -> np.ndarray:
    """``[N]``: steps from each step to its episode's last stored one (0 at the last)."""
    out = np.zeros(len(episode), np.int64)
    for t in range(len(episode) - 2, -1, -1):
        out[t] = out[t + 1] + 1 if episode[t + 1] == episode[t] else 0
    return out


def critic_table(
    algo: Any, *, samples: int = 8000, bins: int = 5, bf16: bool = False, seed: int = 0
) -> list[dict[str, float]]:
    """One row per ``G`` bin (``lo``, ``hi``, ``n`` and the module docstring's means) over up to
    ``samples`` replay steps far enough from their episode's end, the bins ``bins`` quantiles
    of the sample's ``G`` (equal counts; fewer where ``G`` repeats, as 0 does on a sparse
    task). ``algo``: a ``tdmpc2`` agent."""
    m, twohot, g = algo.model, algo.twohot, float(algo.discount)
    st = algo.replay.steps()
    reward = np.asarray(st.reward, np.float64).reshape(-1)
    episode = np.asarray(st.episode).reshape(-1)
    G = returns_to_go(reward, episode, g)
    far = np.flatnonzero(steps_left(episode) >= 2 / (1 - g))
    rng = np.random.default_rng(seed)
    idx = rng.choice(far, min(samples, len(far)), replace=False)
    dev = algo.ctx.device

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x)[idx], dtype=torch.float32, device=dev)

    obs, nobs, act, r = t(st.obs), t(st.next_obs), t(st.act), t(reward)
    cast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), cast:
        z, nz = m.encode(obs), m.encode(nobs)
        q_heads = twohot.decode(m.Q(z, act)).float()  # [num_q, N]
        a_next, _ = m.pi(nz)
        q_next = twohot.decode(m.Q(nz, a_next, target=True)).float()  # [num_q, N]
        _, info = m.pi(z)
        q_pi = twohot.decode(m.Q(z, info["mean"])).float().mean(0)
    pair = torch.randperm(q_next.shape[0], generator=torch.Generator().manual_seed(seed))[:2]
    two = q_next[pair.to(q_next.device)]  # the two heads a target draws
    target = r + g * two.min(0).values
    gap = (two[0] - two[1]).abs()
    pess = two.mean(0) - two.min(0).values
    rows = []
    G_s = G[idx]
    edges = np.unique(np.quantile(G_s, np.linspace(0, 1, bins + 1)))
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        last = k == len(edges) - 2
        sel = torch.as_tensor((G_s >= lo) & ((G_s <= hi) if last else (G_s < hi)))
        sel = sel.to(q_heads.device)
        n = int(sel.sum())
        if not n:
            continue
        rows.append({
            "lo": lo, "hi": hi, "n": n, "G": float(G_s[sel.cpu().numpy()].mean()),
            "Q(z,a)": float(q_heads[:, sel].mean()), "target": float(target[sel].mean()),
            "Q(z,pi)": float(q_pi[sel].mean()), "|h1-h2|": float(gap[sel].mean()),
            "mean-min": float(pess[sel].mean()), "r": float(r[sel].mean()),
        })  # fmt: skip
    return rows


def _print(rows: list[dict[str, float]], title: str) -> None:
    cols = ["G", "Q(z,a)", "target", "Q(z,pi)", "|h1-h2|", "mean-min", "r"]
    print(title)
    print(f"{'G bin':>15} {'n':>6} " + " ".join(f"{c:>8}" for c in cols))
    for row in rows:
        vals = " ".join(f"{row[c]:8.2f}" for c in cols)
        print(f"{row['lo']:7.1f}-{row['hi']:<7.1f} {row['n']:6d} {vals}")


def main(argv: list[str] | None = None) -> None:
    from benchmark.driver import load_agent

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trial", help="a trial folder, results/<run>/trials/tdmpc2__<task>__s<seed>")
    p.add_argument("--checkpoint", action="store_true", help="an unfinished trial's checkpoint")
    p.add_argument("--samples", type=int, default=8000, help="replay steps sampled")
    p.add_argument("--bins", type=int, default=5, help="return bins (quantiles)")
    p.add_argument("--seed", type=int, default=0, help="the sample's and the head pair's seed")
    p.add_argument(
        "--updates", type=int, default=0,
        help="then continue the agent's updates on its frozen replay (no new data) this many times",
    )  # fmt: skip
    p.add_argument("--every", type=int, default=1000, help="print the table every so many updates")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="fp32", help="of the updates")
    args = p.parse_args(argv)
    algo, _, spec, step = load_agent(args.trial, checkpoint=args.checkpoint)
    if spec.algo != "tdmpc2":
        raise SystemExit(f"error: {args.trial} ran {spec.algo!r}; give a tdmpc2 trial")
    print(f"{spec.label} at env step {step}, discount {algo.discount:.4g}, "
          f"{len(algo.replay)} stored steps")  # fmt: skip
    bf16 = bool(getattr(algo.cfg, "bf16", False))
    for cast in [True, False] if bf16 else [False]:
        title = "bf16 autocast (as the trial ran)" if cast else "float32"
        _print(
            critic_table(algo, samples=args.samples, bins=args.bins, bf16=cast, seed=args.seed),
            title,
        )
    if not args.updates:
        return
    # the agent's own updates on its frozen replay, in the precision asked (read out in fp32)
    algo.cfg = dataclasses.replace(algo.cfg, bf16=args.precision == "bf16")
    starts = algo.replay.full_starts(algo.cfg.horizon)
    t0 = time.perf_counter()
    for i in range(1, args.updates + 1):
        algo._update(starts)
        if i % args.every == 0 or i == args.updates:
            rows = critic_table(algo, samples=args.samples, bins=args.bins, seed=args.seed)
            _print(rows, f"float32, after {i} more {args.precision} updates on the frozen replay")
    print(f"{(time.perf_counter() - t0) / args.updates * 1e3:.0f} ms per update (with read-outs)")


if __name__ == "__main__":
    main()
