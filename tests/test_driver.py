"""The driver on every registered algorithm: determinism, evaluation bookkeeping."""

from __future__ import annotations

import pytest
from smoke import smoke_spec, values

from benchmark.driver import TrialSpec, eval_curve, resolve, run_trial

# The smoke runs of every plugin (their SMOKE entries, bookkeeping and exact metric rows) are in
# tests/smoke.py and tests/test_fingerprints.py.


@pytest.mark.parametrize(
    "algo", ["random", "sac", "rs", "pets", "icem", "mppi", "mbpo", "dyna", "ilqg", "pilco"]
)
def test_same_seed_same_curve(algo):
    spec = smoke_spec(algo, seed=3, total_steps=300, eval_every=150)
    a, b = values(run_trial(spec)), values(run_trial(spec))
    assert a == b
    other = run_trial(TrialSpec(**{**spec.__dict__, "seed": 4}))
    assert values(other) != a


def test_eval_episodes_use_fixed_initial_states():
    spec = TrialSpec("random", "pendulum", seed=0, total_steps=200, eval_every=100, eval_episodes=2)
    lengths = [r["value"] for r in run_trial(spec) if r["metric"] == "eval_length"]
    assert lengths == [200.0] * 3


def test_resolve_checks_capabilities():
    from algorithms.api import ConfigError

    with pytest.raises(
        ConfigError, match="'lqr' needs linearization, which task 'hopper' does not"
    ):
        resolve(TrialSpec("lqr", "hopper", seed=0, total_steps=1))
    resolve(TrialSpec("lqr", "pendulum", seed=0, total_steps=1))  # pendulum offers it: no error


def test_zero_eval_episodes_leaves_the_training_curve():
    spec = TrialSpec("random", "pendulum", seed=0, total_steps=400, eval_every=200, eval_episodes=0)
    rows = run_trial(spec)
    assert eval_curve(rows) == []
    assert [r["env_step"] for r in rows if r["metric"] == "train_return"] == [200, 400]
