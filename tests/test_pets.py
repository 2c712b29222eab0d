"""``pets`` learning tests (slow): the cart-pole swing-up at a reduced planner size."""

from __future__ import annotations

import pytest

from algorithms.models.layers import cpu_has_fast_bf16
from benchmark.driver import TrialSpec, eval_curve, run_trial

#: PETS's model and data loop (5 probabilistic networks, 5 epochs per trial, TS-inf) with the
#: planner cut to fit CI. Where the CPU has bf16 units (2-4x faster): bf16 planning, population
#: 200 / 20 elites (paper 400 / 40), 10 particles (20), horizon 15 (25). Elsewhere fp32, whose
#: cost at that size (over 15 min on CI's AVX2 host) does not fit: population 100 / 10 elites and
#: 5 particles (one per network), a quarter of the rows.
FAST_BF16 = cpu_has_fast_bf16()
REDUCED = {
    "population": 200 if FAST_BF16 else 100,
    "elites": 20 if FAST_BF16 else 10,
    "particles": 10 if FAST_BF16 else 5,
    "horizon": 15,
    "model.bf16": FAST_BF16,
}


@pytest.mark.slow
@pytest.mark.ci
def test_pets_swings_up_the_cartpole_within_8_trials() -> None:
    spec = TrialSpec(
        algo="pets",
        task="cartpole_swingup",
        seed=0,
        total_steps=1600,  # 8 trials of 200 steps: 1 random + 7 planned
        eval_every=1600,
        eval_episodes=1,
        overrides=REDUCED,
    )
    rows = run_trial(spec)
    trials = [r["value"] for r in rows if r["metric"] == "train_return"]
    assert len(trials) == 8
    final_eval = eval_curve(rows)[-1][1]
    # A return of 150 of 200 needs the pole swung up within ~1 s and held there (the reward is
    # exp(-d^2 / l^2) of the tip's distance d from the top): random actions score ~0-5, a
    # model that cannot swing up scores < 40. Measured (seed 0): bf16 settings, trials 4-8
    # reached 156-179; fp32 settings, 83, 164, 176, 175 in trials 5-8, evaluation 175 (7.3 min
    # beside one other process on the AVX2 machine). The paper reports ~180 after ~10 trials.
    assert max(trials[3:]) >= 150, trials
    assert final_eval >= 150, (final_eval, trials)
