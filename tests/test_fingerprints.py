"""Golden fingerprints: every plugin's smoke run, compared exactly with its stored metric rows.

An unintended numerical change (a reordered sum, another default, a new random draw) fails here in
seconds. The rows are exact on the machine kind that made them (``signature`` in each file); on
another one the comparison is skipped with a one-line reason (other CPUs take other kernel paths).
Refresh on purpose with ``make fingerprints`` (see ``tests/smoke.py``).
"""

from __future__ import annotations

import pytest
from smoke import (
    SMOKE,
    first_difference,
    load_fingerprint,
    machine_signature,
    smoke_spec,
    values,
)

from algorithms import ALGORITHMS
from benchmark.driver import eval_curve, run_trial

REFRESH = "run `make fingerprints` on purpose to refresh them"


def test_every_algorithm_has_a_smoke_entry():
    assert set(SMOKE) == set(ALGORITHMS.names())


@pytest.mark.parametrize("algo", ALGORITHMS.names())
def test_smoke_run_matches_its_fingerprint(algo):
    rows = run_trial(smoke_spec(algo))
    # the bookkeeping holds everywhere: evaluations at 0 and every 200 steps, training episodes
    assert [s for s, _ in eval_curve(rows)] == [0, 200, 400]
    assert any(r["metric"] == "train_return" for r in rows)

    stored = load_fingerprint(algo)
    assert stored is not None, f"no tests/fingerprints/{algo}.json: {REFRESH}"
    here = machine_signature()
    if stored["signature"] != here:
        diff = {k: (v, here.get(k)) for k, v in stored["signature"].items() if here.get(k) != v}
        pytest.skip(
            f"fingerprints were made on another machine kind {diff} (other CPUs take other "
            f"kernel paths, so rows are exact per machine only): {REFRESH} here to compare"
        )
    got = values(rows)
    assert got == stored["rows"], (
        f"{algo}'s smoke run changed numerically: {first_difference(stored['rows'], got)}. "
        f"If the change is intended, {REFRESH} and commit them."
    )
