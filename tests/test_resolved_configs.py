"""Resolved configs: every hyperparameter a trial runs with is decided before the plan is written
and recorded in ``meta.json`` (no ``None`` left for "decided later")."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from smoke import smoke_spec

from algorithms import ALGORITHMS, get_algorithm
from algorithms.api import apply_overrides
from algorithms.dyna import DynaAgent
from algorithms.mbpo import MBPOAgent, MBPOConfig
from benchmark import driver
from benchmark.driver import TrialSpec, resolve_config, task_spec
from benchmark.run import plan
from benchmark.suites import GridRequest, available_suites, expand
from envs.spec import TaskEntry


def _none_fields(config: Any, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += _none_fields(value, f"{prefix}{f.name}.")
        elif value is None:
            out.append(prefix + f.name)
    return out


def _pairs(suite: str) -> dict[tuple[str, str], TrialSpec]:
    return {(s.algo, s.task): s for s in expand(GridRequest(suite=suite))}


@pytest.mark.parametrize("suite", available_suites())
def test_no_resolved_field_is_none(suite):
    pairs = _pairs(suite)
    assert pairs
    for (algo, task), spec in pairs.items():
        _, config = resolve_config(spec)
        assert _none_fields(config) == [], f"{algo} on {task} in suite {suite}"


@pytest.mark.parametrize("suite", available_suites())
def test_resolving_twice_changes_nothing(suite):
    for spec in _pairs(suite).values():
        cls, config = resolve_config(spec)
        assert cls.resolve_config(task_spec(spec.task), config) == config


def test_mbpo_per_task_values_are_resolved_before_the_trial():
    spec = TrialSpec("mbpo", "hopper", seed=0, total_steps=1, overrides={"updates_per_step": 5})
    _, cfg = resolve_config(spec)
    assert isinstance(cfg, MBPOConfig)
    assert cfg.rollout_schedule == (20, 150, 1, 15) and cfg.sac.target_entropy == -1.0
    assert cfg.updates_per_step == 5  # an override wins over the table
    assert cfg.epoch_length == 1000 and cfg.model.hidden == 200 and cfg.model.max_epochs == 0
    assert cfg.model.train_every == 250 and len(cfg.model.weight_decays) == cfg.model.layers + 1
    _, pend = resolve_config(TrialSpec("mbpo", "pendulum", seed=0, total_steps=1))
    assert pend.sac.target_entropy == -1.0  # no code config for Pendulum: -|A|
    # the table fills nested fields too, and a nested override wins over it
    _, hum = resolve_config(TrialSpec("mbpo", "humanoid", seed=0, total_steps=1))
    assert (hum.model.hidden, hum.model.train_every, hum.sac.target_entropy) == (400, 1000, -2.0)
    spec = TrialSpec(
        "mbpo", "humanoid", seed=0, total_steps=1, overrides={"model.hidden": 200, "sac": {"lr": 1}}
    )
    _, hum = resolve_config(spec)
    assert (hum.model.hidden, hum.model.train_every, hum.sac.lr) == (200, 1000, 1.0)
    _, dyna = resolve_config(TrialSpec("dyna", "pendulum", seed=0, total_steps=1))
    assert dyna.rollout_horizon == 200  # the task's episode length


@pytest.mark.parametrize("cls", [MBPOAgent, DynaAgent])
def test_a_config_passed_to_the_constructor_is_resolved_there(cls):
    from algorithms.api import RunContext

    task = task_spec("pendulum")
    config = apply_overrides(cls.Config(), {"model.hidden": 16, "sac.hidden": 16})
    agent = cls(task, config, RunContext.from_seed(0))
    assert agent.cfg == cls.resolve_config(task, config)
    assert _none_fields(agent.cfg) == []


def test_plan_writes_the_resolved_configs_and_builds_each_env_once(tmp_path, monkeypatch):
    resolved: list[str] = []
    original = TaskEntry.resolve

    def counting(self):
        resolved.append(self.name)
        return original(self)

    monkeypatch.setattr(TaskEntry, "resolve", counting)
    monkeypatch.setattr(driver, "_TASK_SPECS", {})
    req = GridRequest(suite="quick", algos=["mbpo", "sac", "pilco", "pets"], tasks=["pendulum"])
    run_dir, specs = plan(req, tmp_path, "r")
    assert sorted(resolved) == ["pendulum"]  # the grid check and the plan share one env build
    meta = json.loads((run_dir / "meta.json").read_text())
    configs = meta["resolved_configs"]
    assert set(configs) == {f"{s.algo}__{s.task}" for s in specs}
    for spec in specs:
        record = dict(configs[f"{spec.algo}__{spec.task}"])
        assert None not in record.values(), spec.algo
        _, cfg = resolve_config(spec)
        assert record.pop("class") == type(cfg).__qualname__
        as_json = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
        assert record == as_json
    assert configs["mbpo__pendulum"]["updates_per_step"] == 20


def test_every_registered_plugin_resolves_on_its_smoke_task():
    for algo in ALGORITHMS.names():
        spec = smoke_spec(algo)
        cls, config = resolve_config(spec)
        assert cls is get_algorithm(algo)
        assert _none_fields(config) == [], algo
