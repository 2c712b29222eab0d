"""Golden fingerprints: every plugin's smoke run, compared exactly with its stored metric rows.

An unintended numerical change (a reordered sum, another default, a new random draw) fails here in
seconds. The rows are exact on the machine kind that made them (each file keeps rows per kind,
``kinds``); on a kind the file lacks the comparison is skipped with a one-line reason (other CPUs
take other kernel paths).
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
def test_smoke_run_matches_its_fingerprint(algo):
    rows = run_trial(smoke_spec(algo))
    # the bookkeeping holds everywhere: evaluations at 0 and every 200 steps, training episodes
    assert [s for s, _ in eval_curve(rows)] == [0, 200, 400]
    assert any(r["metric"] == "train_return" for r in rows)

    stored = load_fingerprint(algo)
    assert stored is not None, f"no tests/fingerprints/{algo}.json: {REFRESH}"
    reference = rows_here(stored)
    if reference is None:
        here = machine_signature()
        diffs = [
            {k: (v, here.get(k)) for k, v in kind["signature"].items() if here.get(k) != v}
            for kind in stored["kinds"]
        ]
        pytest.skip(
            f"fingerprints were made on other machine kinds {diffs} (other CPUs take other "
            f"kernel paths, so rows are exact per machine only): {REFRESH} here to add this one"
        )
    got = values(rows)
    assert got == reference, (
        f"{algo}'s smoke run changed numerically: {first_difference(reference, got)}. "
        f"If the change is intended, {REFRESH} and commit them."
    )


class _Stop(Exception):
    pass


def _stop_after_eval_at_200(new, rows) -> None:
    if any(r["metric"] == "eval_return" and r["env_step"] == 200 for r in new):
        raise _Stop


@pytest.mark.parametrize("algo", ALGORITHMS.names())
def test_interrupted_smoke_run_resumes_exactly(algo, tmp_path):
    """Stopped after its evaluation at step 200 and resumed from its last checkpoint (every
    episode end saves here), the smoke run ends with exactly the rows of an uninterrupted one:
    the plugin's ``state_dict`` plus the driver's generator state is the whole trial state."""
    spec = smoke_spec(algo)
    with pytest.raises(_Stop):
        run_trial(spec, trial_dir=tmp_path, report=_stop_after_eval_at_200, checkpoint_every_s=0)
    ckpt = read_checkpoint(tmp_path)
    if ckpt is None:  # lqr balances its smoke task: no episode ends, so nothing to resume from
        pytest.skip(f"{algo}'s smoke run ends no episode within 200 steps: no checkpoint")
    at = ckpt["step"]
    resumed = values(run_trial(spec, trial_dir=tmp_path))
    stored = load_fingerprint(algo)
    reference = rows_here(stored) if stored is not None else None
    if reference is None:  # another machine kind: an uninterrupted run here is the reference
        reference = values(run_trial(spec))
    assert resumed == reference, (
        f"{algo} resumed from step {at} differs: {first_difference(reference, resumed)}"
    )
