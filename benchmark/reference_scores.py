"""Measure every built-in task's random score (:data:`envs.scores.RANDOM`).

``python -m benchmark.reference_scores [TASK ...]`` runs the ``random`` plugin's evaluation (the
uniform policy, 10 episodes) for seeds 0-9 of each task: the evaluation starts that trials of
those seeds use. It prints the mean over the 100 episodes, ready to paste into
``envs/scores.py``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmark.driver import TrialSpec, eval_curve, run_trial
from envs import TASKS
from envs.scores import REFERENCES

SEEDS = range(10)
EPISODES = 10


def random_score(task: str, seeds=SEEDS, episodes: int = EPISODES) -> float:
    """Mean evaluation return of the uniform random policy over ``seeds`` x ``episodes``."""
    returns = []
    for seed in seeds:
        spec = TrialSpec(
            "random", task, seed, total_steps=0, eval_episodes=episodes, device="cpu", threads=1
        )
        returns.append(eval_curve(run_trial(spec))[0][1])
    return float(np.mean(returns))


def main(argv: list[str]) -> None:
    tasks = argv or [t for t in TASKS if t in REFERENCES]
    for task in tasks:
        t0 = time.perf_counter()
        score = random_score(task)
        print(f'    "{task}": {score:.2f},  # {time.perf_counter() - t0:.0f} s', flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
