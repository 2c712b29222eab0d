"""Score normalisation: every built-in task with a reference has a measured random score, and the
stored random scores of the cheap tasks are what the suite's random plugin measures today."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.reference_scores import random_score
from envs import TASKS
from envs.scores import RANDOM, REFERENCES, score_reference


def test_every_built_in_task_but_humanoid_is_normalised():
    assert set(REFERENCES) == set(RANDOM) == set(TASKS) - {"humanoid"}
    for name in REFERENCES:
        ref = TASKS[name].score
        assert ref is not None and ref.reference > ref.random, name
        assert ref.normalize(ref.random) == 0.0 and np.isclose(ref.normalize(ref.reference), 1.0)
    assert TASKS["humanoid"].score is None
    assert score_reference("dmc:cartpole-swingup").normalize(835.0) == 0.835
    assert score_reference("gym:Swimmer-v5") is None


@pytest.mark.parametrize("task", ["pendulum", "cartpole", "acrobot", "inverted_pendulum"])
def test_stored_random_scores_are_measured_ones(task):
    assert round(random_score(task), 2) == RANDOM[task]
