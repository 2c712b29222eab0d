"""Speed scripts (print figures; ``make speed``), side-by-side peer measurements (``peers/``) and
the exploration figure of ``exploration.py``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from algorithms.api import Transition


def random_transitions(task, steps: int, seed: int) -> list[Transition]:
    """``steps`` transitions of uniform random actions on ``task`` (a resolved ``TaskSpec``),
    episodes restarted as they end: the data the speed scripts build their agents on."""
    env = task.make_env()
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    data = []
    for _ in range(steps):
        a = rng.uniform(task.act_low, task.act_high).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        data.append(Transition(obs, a, float(r), nxt, bool(term), bool(trunc)))
        obs = nxt if not (term or trunc) else env.reset()[0]
    return data


def median_ms(fn: Callable[[], object], *, warmup: int, repeats: int, iters: int) -> float:
    """Median over ``repeats`` blocks of ``iters`` calls of ``fn`` (after ``warmup`` calls), in
    milliseconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - t0) / iters)
    return 1e3 * statistics.median(times)
