"""The thin Ray Tune layer: one Tune trial per :class:`TrialSpec`, nothing else.

Each trial runs :func:`benchmark.trial.execute` in its own folder and forwards every evaluation to
``ray.tune.report`` (with ``env_step``, since ``training_iteration`` only counts reports).
Resuming is done one level up (``benchmark.run``): finished trials are dropped from the grid and
unfinished ones continue from their own ``checkpoint.pt``, so no Tune experiment state is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.driver import Row, TrialSpec
from benchmark.trial import execute, trial_name


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``config = {"run_dir": str, "trial": asdict(TrialSpec)}``."""
    from ray import tune

    spec = TrialSpec(**config["trial"])
    trial_dir = Path(config["run_dir"]) / "trials" / trial_name(spec)

    def on_report(new: list[Row]) -> None:
        latest = {r["metric"]: r["value"] for r in new}
        step = max(r["env_step"] for r in new)
        print(
            f"[{spec.label}] step {step}/{spec.total_steps} "
            f"eval_return {latest.get('eval_return', float('nan')):.1f}",
            flush=True,
        )
        tune.report({"env_step": step, **latest})

    execute(spec, trial_dir, on_report=on_report)


def run_with_ray(
    specs: Sequence[TrialSpec],
    run_dir: Path,
    *,
    attempt: int,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    num_cpus: int | None = None,
) -> None:
    """Run ``specs`` as one Tune grid. Local Ray unless ``RAY_ADDRESS`` is set (then join it)."""
    # before importing ray: one progress line per trial (not deduplicated), no usage reporting
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import tune

    address = os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    trainable = tune.with_resources(tune_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            trial_dirname_creator=lambda t: trial_name(TrialSpec(**t.config["trial"]))
        ),
        param_space={
            "run_dir": str(run_dir.resolve()),
            "trial": tune.grid_search([asdict(s) for s in specs]),
        },
        run_config=tune.RunConfig(
            name=f"attempt-{attempt}",
            storage_path=str((run_dir / "ray").resolve()),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    tuner.fit()  # errored trials are recorded in their status.json; the grid goes on
