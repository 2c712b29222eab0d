"""Score normalisation per task: ``(return - random) / (reference - random)``, so that 0 is the
uniform random policy and 1 the task's reference, and scores of different tasks can be pooled
(rliable's aggregates, :mod:`benchmark.stats`).

- ``random``: the mean evaluation return of the suite's own ``random`` plugin on the suite's own
  evaluation starts (seeds 0-9, 10 episodes each: the starts that evaluations of seeds 0-9 use),
  measured by ``python -m benchmark.reference_scores`` (its output is pasted into
  :data:`RANDOM`; ``tests/test_scores.py`` re-measures the cheap tasks exactly);
- ``reference``: a published or documented score, with its source (:data:`REFERENCES`):
  D4RL's expert scores for the MuJoCo locomotion tasks, gymnasium's ``reward_threshold``
  ("solved") or the maximum return where the task has one, a paper's asymptote otherwise.

DeepMind Control Suite tasks use DMC's own 0-1000 scale (rewards in [0, 1] over 1000 control
steps): ``score / 1000``, as TD-MPC2 and DreamerV3 aggregate them. A task without a reference
(``humanoid``, ``gym:`` ids) is left out of the normalised aggregates, with a warning in the
figure's caption.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreReference:
    """How a task's returns are normalised (:meth:`normalize`)."""

    random: float
    """The uniform random policy's mean evaluation return (0 after normalisation)."""
    reference: float
    """The reference return (1 after normalisation)."""
    source: str
    """Where ``random`` and ``reference`` come from."""

    def normalize(self, returns):
        """``(returns - random) / (reference - random)`` (a float or an array)."""
        return (returns - self.random) / (self.reference - self.random)


#: The random policy's mean evaluation return per built-in task: ``python -m
#: benchmark.reference_scores`` (seeds 0-9 x 10 episodes), at the commit in :data:`RANDOM_AT`.
RANDOM: dict[str, float] = {
    "pendulum": -1230.14,
    "cartpole_swingup": 1.63,
    "cartpole": 22.34,
    "cartpole_continuous": 27.93,
    "acrobot": -495.00,
    "inverted_pendulum": 5.12,
    "inverted_double_pendulum": 48.96,
    "reacher": -42.99,
    "halfcheetah": -296.80,
    "hopper": 17.15,
    "walker2d": 1.06,
    "ant": -57.27,
}
RANDOM_AT = "9ea09a9"

_D4RL = "D4RL's expert score (Fu et al. 2020, d4rl/infos.py REF_MAX_SCORE, the -v2 tasks)"
_SOLVED = "gymnasium's reward_threshold for the task ('solved')"

#: task -> (reference return, its source).
REFERENCES: dict[str, tuple[float, str]] = {
    "pendulum": (
        -150.0,
        "converged SAC on Pendulum-v1 (ours at 15k: -147 ± 58, docs/algorithms/sac.md)",
    ),
    "cartpole_swingup": (
        180.0,
        "PETS's asymptote on its cart-pole swing-up (Chua et al. 2018, Fig. 3)",
    ),
    "cartpole": (500.0, "the maximum return (+1 per step, 500 steps)"),
    "cartpole_continuous": (200.0, "the maximum return (+1 per step, 200 steps)"),
    "acrobot": (-100.0, _SOLVED),
    "inverted_pendulum": (1000.0, "the maximum return (+1 per step, 1000 steps)"),
    "inverted_double_pendulum": (9100.0, _SOLVED),
    "reacher": (-3.75, _SOLVED),
    "halfcheetah": (12135.0, _D4RL),
    "hopper": (3234.3, _D4RL),
    "walker2d": (4592.3, _D4RL),
    "ant": (3879.7, _D4RL),
}

DMC = ScoreReference(0.0, 1000.0, "DMC's 0-1000 scale (score / 1000, as TD-MPC2 and DreamerV3)")


def score_reference(task: str) -> ScoreReference | None:
    """The task's normalisation, or ``None`` (no reference, or its random score not measured)."""
    if task.startswith("dmc:"):
        return DMC
    if task not in REFERENCES or task not in RANDOM:
        return None
    reference, source = REFERENCES[task]
    return ScoreReference(
        RANDOM[task],
        reference,
        f"random: the suite's random plugin at {RANDOM_AT}; reference: {source}",
    )
