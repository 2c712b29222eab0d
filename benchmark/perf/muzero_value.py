"""How far a ``muzero`` agent's value is from the returns of its own replay, by the age of the
data: the stored episodes split into ``--parts`` equal groups in the order they were played, and
for each group the count of episodes and of those that terminated (on Acrobot-v1: reached the
goal), and over the terminated episodes the mean network value at their first step (``v0``),
the mean discounted return that followed it (``G0``, at the agent's per-decision discount, exact
since the episode ended) and the mean of ``v - G`` over all their steps. Episodes cut by the time limit or still
running are counted but left out of the means (their ``G`` stops at the cut).

A value fitted to the replay's mixture of old and recent behaviour has about the same ``v0``
in every group while ``G0`` rises with the policy: the recent groups' ``v - G`` below zero is
the pessimism the old data leaves in the value (docs/algorithms/muzero.md)::

    python -m benchmark.perf.muzero_value results/<run>/trials/<trial> [--checkpoint]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import torch

from benchmark.perf.critic import returns_to_go


def value_by_age(algo: Any, parts: int = 3) -> list[dict[str, float]]:
    """One row per group of episodes, oldest first (module docstring): ``episodes``,
    ``terminated``, ``v0``, ``G0``, ``bias`` (``v - G``). ``algo``: a ``muzero`` agent."""
    st = algo.replay.steps()
    obs = torch.as_tensor(st.obs, dtype=torch.float32, device=algo.device)
    with torch.no_grad():
        _, v_logits = algo.net.predict(algo.net.represent(obs))
        v = algo.net.value(v_logits).double().cpu().numpy()
    episode = np.asarray(st.episode).reshape(-1)
    G = returns_to_go(np.asarray(st.reward, np.float64).reshape(-1), episode, algo.cfg.discount)
    ids = list(dict.fromkeys(episode.tolist()))  # in storage order
    rows = []
    for group in np.array_split(np.array(ids), parts):
        v0, g0, bias, ended = [], [], [], 0
        for e in group:
            idx = np.flatnonzero(episode == e)
            if not st.terminated[idx[-1]]:
                continue
            ended += 1
            v0.append(v[idx[0]])
            g0.append(G[idx[0]])
            bias.append(np.mean(v[idx] - G[idx]))
        rows.append(
            {
                "episodes": len(group),
                "terminated": ended,
                "v0": float(np.mean(v0)) if v0 else float("nan"),
                "G0": float(np.mean(g0)) if g0 else float("nan"),
                "bias": float(np.mean(bias)) if bias else float("nan"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmark.driver import load_agent

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trial", help="results/<run>/trials/<trial>")
    p.add_argument("--checkpoint", action="store_true", help="an unfinished trial's checkpoint")
    p.add_argument("--parts", type=int, default=3, help="groups of episodes, oldest first")
    args = p.parse_args(argv)
    try:
        algo, _, spec, step = load_agent(args.trial, device="cpu", checkpoint=args.checkpoint)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if spec.algo != "muzero":
        print(f"error: {args.trial} ran {spec.algo!r}; give a muzero trial", file=sys.stderr)
        return 2
    print(f"{args.trial} at step {step}: discount {algo.cfg.discount} per decision")
    print(f"{'group':>5} {'episodes':>8} {'terminated':>10} {'v0':>7} {'G0':>7} {'v-G':>7}")
    for i, r in enumerate(value_by_age(algo, args.parts)):
        print(
            f"{i + 1:>5} {r['episodes']:>8} {r['terminated']:>10} {r['v0']:7.1f} {r['G0']:7.1f} "
            f"{r['bias']:7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
