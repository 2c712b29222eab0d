"""Every plugin's smoke run, and its golden fingerprint (the run's metric rows, stored exactly).

The smoke runs (:data:`SMOKE`) are two evaluation cycles of each registered algorithm with small
overrides: seconds each. ``tests/test_fingerprints.py`` compares their metric rows, at fp32 on the
CPU with one torch thread, with ``tests/fingerprints/<algo>.json`` exactly, so an unintended
numerical change fails in seconds. Exactness holds on one machine kind only: other CPUs (another
SIMD capability, another torch, NumPy or MuJoCo) take other kernel paths and round differently, so
each file stores rows per machine kind (its :func:`machine_signature`), and the comparison is
skipped on a kind the file lacks. Refresh them on purpose with::

    make fingerprints            # python tests/smoke.py --update [ALGO ...]

which prints the plugins whose rows changed. On a kind the file lacks, it adds this kind's rows
and keeps the others; where this kind's rows changed (the code changed numerically), it drops
the other kinds' rows, now stale, which that kind's machine stamps again.

An AVX-512 host stamps the AVX2 kind too: with ``ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2`` ATen, MKL and oneDNN take their AVX2
kernels, and the rows equal an AVX2 EPYC's exactly (checked on all 18 plugins' stored AVX2 rows
at ``b25258e``); ``make fingerprints`` runs both.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from algorithms import ALGORITHMS
from benchmark.driver import TrialSpec, run_trial

FINGERPRINTS = Path(__file__).resolve().parent / "fingerprints"

#: Small overrides per algorithm so that two evaluation cycles exercise learning in seconds.
#: Every registered algorithm needs an entry (a new plugin must be smoke-tested).
SMOKE: dict[str, tuple[str, dict]] = {
    "random": ("pendulum", {}),
    "lqr": ("inverted_pendulum", {}),
    "sac": ("pendulum", {"initial_random_steps": 64, "batch_size": 32}),
    "ddpg": ("pendulum", {"initial_random_steps": 64, "batch_size": 32}),
    "dqn": (
        "cartpole",
        {
            "learning_starts": 100,
            "batch_size": 32,
            "train_frequency": 2,
            "target_network_frequency": 50,
        },
    ),
    "muzero": (
        "cartpole",
        {
            "num_simulations": 5,
            "batch_size": 16,
            "num_unroll_steps": 3,
            "td_steps": 5,
            "probe_horizons": (1, 2),
        },
    ),
    "rs": (
        "pendulum",
        {"population": 64, "horizon": 5, "initial_random_steps": 100, "model.max_epochs": 5},
    ),
    **{
        name: (
            "cartpole_swingup",
            {
                "population": 32,
                "horizon": 5,
                "particles": 4,
                "iterations": 2,
                "initial_random_steps": 100,
                "model.max_epochs": 3,
                "model.hidden": 32,
                **({"elites": 4} if name != "mppi" else {}),
            },
        )
        for name in ("cem", "mppi", "icem", "pets")
    },
    **{
        name: (
            "pendulum",
            {
                "initial_random_steps": 100,
                "model.train_every": 100,
                "epoch_length": 100,
                "rollouts_per_step": 2,
                "updates_per_step": 1,
                "sac.batch_size": 32,
                "sac.hidden": 32,
                "model.hidden": 32,
                "model.max_epochs": 2,
                **({"rollout_horizon": 20} if name == "dyna" else {}),
            },
        )
        for name in ("mbpo", "dyna")
    },
    **{
        name: (
            "pendulum",
            {
                "initial_random_steps": 100,
                "model.train_every": 100,
                "updates_per_step": 1,
                "horizon": 2,
                "sac.batch_size": 32,
                "sac.hidden": 32,
                "model.hidden": 32,
                "model.max_epochs": 2,
            },
        )
        for name in ("mve", "steve")
    },
    "ilqg": (
        "pendulum",
        {
            "oracle": False,
            "initial_random_steps": 100,
            "horizon": 5,
            "iterations": 1,
            "initial_iterations": 2,
            "initial_plans": [0.0],
            "model.members": 3,
            "model.elites": 2,
            "model.hidden": 32,
            "model.layers": 2,
            "model.max_epochs": 3,
        },
    ),
    "tdmpc2": (
        "pendulum",
        {
            "seed_steps": 200,
            "enc_dim": 32,
            "mlp_dim": 32,
            "latent_dim": 16,
            "batch_size": 16,
            "num_samples": 40,
            "num_elites": 8,
            "num_pi_trajs": 4,
            "iterations": 2,
            "probe_horizons": (1, 4),
        },
    ),
    "pilco": (
        "cartpole_swingup",
        {"horizon": 5, "num_basis": 10, "policy_iterations": 3, "gp_iterations": 20},
    ),
}
VOLATILE = {"steps_per_s", "gp_fit_s", "policy_opt_s"}  # wall-clock timings

Values = list[tuple[int, str, float]]


def values(rows: list[dict[str, Any]]) -> Values:
    """``(env_step, metric, value)`` of every row but the wall-clock timings."""
    return [
        (int(r["env_step"]), r["metric"], float(r["value"]))
        for r in rows
        if r["metric"] not in VOLATILE
    ]


def smoke_spec(
    algo: str, seed: int = 0, total_steps: int = 400, eval_every: int = 200
) -> TrialSpec:
    """The smoke trial of ``algo``: its :data:`SMOKE` task and overrides, fp32 (no ``bf16``
    override), on the CPU with one torch thread, one evaluation episode."""
    task, overrides = SMOKE[algo]
    return TrialSpec(
        algo, task, seed=seed, total_steps=total_steps, eval_every=eval_every, eval_episodes=1,
        overrides=overrides, device="cpu", threads=1,
    )  # fmt: skip


class StopRun(Exception):
    """Raised from a report callback to stop a trial (an interruption)."""


def run_to_eval_at_200(spec: TrialSpec, **kwargs: Any) -> list[dict[str, Any]]:
    """Run ``spec`` until its evaluation at step 200 is reported, then stop it as an
    interruption would; returns the rows so far (``kwargs`` go to ``run_trial``)."""
    seen: list[dict[str, Any]] = []

    def report(new, rows) -> None:
        if any(r["metric"] == "eval_return" and r["env_step"] == 200 for r in new):
            seen.extend(rows)
            raise StopRun

    try:
        run_trial(spec, report=report, **kwargs)
    except StopRun:
        return seen
    raise AssertionError(f"{spec.algo}'s run ended without an evaluation at step 200")


def machine_signature() -> dict[str, str]:
    """What decides the floating-point kernels a run takes: equal signatures, equal rows."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu,
        "machine": platform.machine(),
        "numpy": version("numpy"),
        "mujoco": version("mujoco"),
    }


def fingerprint_path(algo: str) -> Path:
    return FINGERPRINTS / f"{algo}.json"


def load_fingerprint(algo: str) -> dict[str, Any] | None:
    """The stored fingerprint, or ``None`` when there is none: ``spec`` (the smoke trial) and
    ``kinds``, a list of ``{"signature", "rows"}``, one per machine kind it was made on (a file
    from before kinds, with one top-level ``signature`` and ``rows``, reads as one kind)."""
    path = fingerprint_path(algo)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if "kinds" not in data:
        data["kinds"] = [{"signature": data.pop("signature"), "rows": data.pop("rows")}]
    for kind in data["kinds"]:
        kind["rows"] = [(int(s), str(m), float(v)) for s, m, v in kind["rows"]]
    return data


def rows_here(stored: dict[str, Any]) -> Values | None:
    """The stored rows of this machine's kind (:func:`machine_signature`), or ``None``."""
    here = machine_signature()
    return next((k["rows"] for k in stored["kinds"] if k["signature"] == here), None)


def spec_record(spec: TrialSpec) -> dict[str, Any]:
    """The trial that produced a fingerprint, as stored next to it (JSON-ready)."""
    record = dict(spec.__dict__)
    record["overrides"] = dict(spec.overrides)
    return record


def store_fingerprint(algo: str, rows: Values, others: list[dict[str, Any]] = ()) -> None:
    """Write ``tests/fingerprints/<algo>.json`` with this machine kind's ``rows`` first, then the
    ``others`` kinds kept: one row per line; JSON numbers are written by ``float.__repr__``, so
    every float64 reads back exactly."""
    FINGERPRINTS.mkdir(exist_ok=True)
    kinds = [{"signature": machine_signature(), "rows": rows}, *others]
    blocks = []
    for kind in kinds:
        sig = json.dumps(kind["signature"], indent=2).replace("\n", "\n      ")
        lines = ",\n".join(
            "        " + json.dumps([int(s), m, float(v)]) for s, m, v in kind["rows"]
        )
        blocks.append(
            f'    {{\n      "signature": {sig},\n      "rows": [\n{lines}\n      ]\n    }}'
        )
    head = json.dumps({"spec": spec_record(smoke_spec(algo))}, indent=2)[:-2]
    text = head + ',\n  "kinds": [\n' + ",\n".join(blocks) + "\n  ]\n}\n"
    fingerprint_path(algo).write_text(text)


def first_difference(stored: Values, got: Values) -> str:
    """One line on where two row lists part."""
    for i, (a, b) in enumerate(zip(stored, got, strict=False)):
        if a != b:
            return f"row {i}: stored {a!r}, got {b!r}"
    return f"{len(stored)} rows stored, {len(got)} produced"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("algos", nargs="*", help="plugins to refresh (default: every registered one)")
    p.add_argument("--update", action="store_true", help="rewrite the stored fingerprints")
    args = p.parse_args(argv)
    algos = args.algos or list(ALGORITHMS.names())
    unknown = sorted(set(algos) - set(SMOKE))
    if unknown:
        print(f"no smoke entry for {', '.join(unknown)}: add it to SMOKE in tests/smoke.py")
        return 2
    changed = []
    here = machine_signature()
    for algo in algos:
        rows = values(run_trial(smoke_spec(algo)))
        old = load_fingerprint(algo)
        others = [k for k in old["kinds"] if k["signature"] != here] if old else []
        mine = rows_here(old) if old else None
        if old is None:
            status = "new"
        elif mine is None:
            status = f"new machine kind (kept: {len(others)} other kind(s), not checked here)"
        elif mine == rows:
            status = "unchanged"
        else:  # the code changed numerically: the other kinds' rows are stale, dropped
            status = (
                f"CHANGED ({first_difference(mine, rows)}); {len(others)} other kind(s) dropped"
            )
            others = []
        if status != "unchanged":
            changed.append(algo)
        print(f"{algo:8s} {len(rows):4d} rows  {status}", flush=True)
        if args.update:
            store_fingerprint(algo, rows, others)
    done = "files rewritten" if args.update else "pass --update to rewrite them"
    print(f"{len(changed)} of {len(algos)} changed: {', '.join(changed) or 'none'} ({done})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
