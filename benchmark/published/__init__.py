"""Published learning curves drawn beside ours, dashed and labelled as published.

``tdmpc2-results/``: the DMC curves shipped in the ``results/`` folder of
github.com/nicklashansen/tdmpc2 at commit e9f5932 (TD-MPC2, TD-MPC, SAC, DreamerV3; MIT licence,
``tdmpc2-results/LICENSE``; ``tdmpc2-results/README.md`` says what they are), copied unchanged.
Their protocol is the suite's default for ``dmc:`` tasks (action repeat 2, ``step`` counting
agent steps, 500 agent steps per episode, 10 evaluation episodes), so they are drawn only on
``dmc:<domain>-<task>`` at that repeat (no ``@k``, or ``@2``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).parent / "tdmpc2-results"
METHODS = {"tdmpc2": "TD-MPC2", "tdmpc": "TD-MPC", "sac": "SAC", "dreamerv3": "DreamerV3"}
SOURCE = "nicklashansen/tdmpc2 results/ at e9f5932 (MIT)"


def published_curves(task: str, *, up_to: float | None = None) -> pd.DataFrame:
    """The published curves of ``task`` (a ``dmc:`` name at action repeat 2), mean and min / max
    over their seeds per step, up to ``up_to`` env steps. Columns ``method, env_step, value,
    low, high, seeds``; empty where nothing is published for the task."""
    cols = ["method", "env_step", "value", "low", "high", "seeds"]
    if not task.startswith("dmc:"):
        return pd.DataFrame(columns=cols)
    body, _, repeat = task.removeprefix("dmc:").partition("@")
    if repeat not in ("", "2"):
        return pd.DataFrame(columns=cols)
    parts = []
    for key, label in METHODS.items():
        path = ROOT / key / f"{body}.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path)
        if up_to is not None:
            df = df[df["step"] <= up_to]
        g = df.groupby("step")["reward"]
        parts.append(
            pd.DataFrame(
                {
                    "method": label,
                    "env_step": g.mean().index,
                    "value": g.mean().to_numpy(),
                    "low": g.min().to_numpy(),
                    "high": g.max().to_numpy(),
                    "seeds": g.size().to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
