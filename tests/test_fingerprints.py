"""Golden fingerprints: every plugin's smoke run, interrupted and resumed, compared exactly with
its stored metric rows.

An unintended numerical change (a reordered sum, another default, a new random draw) or a state
that a checkpoint misses fails here in seconds. The rows are exact on the machine kind that made
them (each file keeps rows per kind, ``kinds``); on a kind the file lacks, the resumed run is
compared with an uninterrupted one and the fingerprint comparison is skipped with a one-line
reason (other CPUs take other kernel paths).
Refresh on purpose with ``make fingerprints`` (see ``tests/smoke.py``).
"""

from __future__ import annotations

import pytest
from smoke import (
    SMOKE,
    first_difference,
    load_fingerprint,
    machine_signature,
    rows_here,
    run_to_eval_at_200,
    smoke_spec,
    values,
)

from algorithms import ALGORITHMS
from benchmark.driver import eval_curve, run_trial
from benchmark.trial import read_checkpoint

REFRESH = "run `make fingerprints` on purpose to refresh them"


def test_every_algorithm_has_a_smoke_entry():
    assert set(SMOKE) == set(ALGORITHMS.names())


@pytest.mark.parametrize("algo", ALGORITHMS.names())
def test_smoke_run_resumed_matches_its_fingerprint(algo, tmp_path):
    """The smoke run, stopped after its evaluation at step 200 and resumed from its last
    checkpoint (every episode end saves here), ends with exactly the stored rows of this machine
    kind. One run checks both the numerics and that the plugin's ``state_dict`` plus the driver's
    generator state is the whole trial state; on a mismatch an uninterrupted run tells which of
    the two broke. (lqr balances its smoke task, so it ends no episode and saves no checkpoint by
    step 200: its second run starts afresh.)"""
    spec = smoke_spec(algo)
    run_to_eval_at_200(spec, trial_dir=tmp_path, checkpoint_every_s=0)
    ckpt = read_checkpoint(tmp_path)
    at = "the start (no checkpoint)" if ckpt is None else f"step {ckpt['step']}"
    rows = run_trial(spec, trial_dir=tmp_path)
    # the bookkeeping holds everywhere: evaluations at 0 and every 200 steps, training episodes
    assert [s for s, _ in eval_curve(rows)] == [0, 200, 400]
    assert any(r["metric"] == "train_return" for r in rows)
    resumed = values(rows)

    stored = load_fingerprint(algo)
    assert stored is not None, f"no tests/fingerprints/{algo}.json: {REFRESH}"
    reference = rows_here(stored)
    if reference is None:  # another machine kind: an uninterrupted run here is the reference
        whole = values(run_trial(spec))
        assert resumed == whole, (
            f"{algo} resumed from {at} differs: {first_difference(whole, resumed)}"
        )
        here = machine_signature()
        diffs = [
            {k: (v, here.get(k)) for k, v in kind["signature"].items() if here.get(k) != v}
            for kind in stored["kinds"]
        ]
        pytest.skip(
            f"resumed run checked against an uninterrupted one; fingerprints were made on other "
            f"machine kinds {diffs} (other CPUs take other kernel paths, so rows are exact per "
            f"machine only): {REFRESH} here to add this one"
        )
    if resumed != reference:
        whole = values(run_trial(spec))
        if whole == reference:
            pytest.fail(
                f"{algo} resumed from {at} differs from its uninterrupted run, which matches the "
                f"fingerprint: {first_difference(reference, resumed)}"
            )
        pytest.fail(
            f"{algo}'s smoke run changed numerically: {first_difference(reference, whole)}. "
            f"If the change is intended, {REFRESH} and commit them."
        )
