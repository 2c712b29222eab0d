"""Registry, config validation and the plugin contract every algorithm must meet."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass
from typing import Annotated

import pytest

from algorithms import ALGORITHMS, get_algorithm
from algorithms.api import (
    AlgoConfig,
    Algorithm,
    ConfigError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    Range,
    UnitInterval,
    apply_overrides,
    check_config,
)
from envs import TASKS, UnknownNameError


@dataclass(frozen=True)
class _Cfg(AlgoConfig):
    lr: float = 1e-3
    """test"""
    layers: int = 2
    """test"""
    mode: str = "a"
    """test"""
    sizes: tuple[int, ...] = (1, 2)
    """test"""
    target: float | None = None
    """test"""


def test_overrides_are_checked_and_coerced():
    cfg = apply_overrides(_Cfg(), {"lr": 1, "sizes": [3, 4], "target": 2})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.sizes == (3, 4) and cfg.target == 2.0
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'lrr'.*Did you mean 'lr'"):
        apply_overrides(_Cfg(), {"lrr": 0.1})
    with pytest.raises(ConfigError, match=r"'layers'.*must be"):
        apply_overrides(_Cfg(), {"layers": 2.5})
    with pytest.raises(ConfigError, match=r"'layers'.*must be"):
        apply_overrides(_Cfg(), {"layers": True})
    with pytest.raises(ConfigError, match="'sizes'"):
        apply_overrides(_Cfg(), {"sizes": ["x"]})


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'sac'.*Valid algorithms: .*random"):
        ALGORITHMS["sacc"]
    with pytest.raises(UnknownNameError, match=r"Did you mean 'hopper'"):
        TASKS["hoper"]


def _field_docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after each field) of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = nxt.value.value
    return docs


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_plugin_contract(name):
    cls = get_algorithm(name)
    assert issubclass(cls, Algorithm) and cls.name == name
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    assert issubclass(cls.Config, AlgoConfig)
    assert cls.Config.__doc__ and len(cls.Config.__doc__) > 20, (
        "the config docstring names its source"
    )
    missing = _undocumented(cls.Config())  # defaults construct
    assert not missing, f"{name}: config fields without a docstring: {missing}"


def _undocumented(config: object, prefix: str = "") -> list[str]:
    """The dotted paths of ``config``'s fields (nested configs included) with no docstring."""
    docs: dict[str, str] = {}
    for klass in reversed(type(config).__mro__):
        if dataclasses.is_dataclass(klass) and klass is not AlgoConfig:
            docs.update(_field_docstrings(klass))
    missing = []
    for f in dataclasses.fields(config):
        if f.name not in docs:
            missing.append(prefix + f.name)
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            missing += _undocumented(value, f"{prefix}{f.name}.")
    return missing


def test_bare_yaml_booleans_fill_string_literals():
    """A bare ``true``/``false`` (YAML, ``SET``) fills a string literal that spells it."""

    @dataclass(frozen=True)
    class _Lit(AlgoConfig):
        mode: typing.Literal["true", "auto"] = "auto"
        """test"""

    assert apply_overrides(_Lit(), {"mode": True}).mode == "true"
    with pytest.raises(ConfigError):
        apply_overrides(_Lit(), {"mode": False})  # "false" is not a choice


# ---------------------------------------------------------------- nested configs, dotted paths
@dataclass(frozen=True)
class _Inner:
    hidden: PositiveInt = 200
    """test"""
    lr: PositiveFloat = 1e-3
    """test"""


@dataclass(frozen=True)
class _Outer(AlgoConfig):
    renamed: typing.ClassVar[dict[str, str]] = {"model_hidden": "model.hidden", "model": "oracle"}
    lr: PositiveFloat = 3e-4
    """test"""
    model: _Inner = dataclasses.field(default_factory=lambda: _Inner(hidden=32))
    """test: a plugin's own nested default"""


def test_nested_overrides_by_dotted_path_or_mapping():
    both = apply_overrides(_Outer(), {"model.lr": 0.1, "model": {"hidden": 7}})
    assert both == _Outer(model=_Inner(hidden=7, lr=0.1))
    # the plugin's nested default is kept where not overridden
    assert apply_overrides(_Outer(), {"model.lr": 1}).model == _Inner(hidden=32, lr=1.0)
    assert apply_overrides(_Outer(), {}) == _Outer()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"model.hiden": 3},
            "unknown hyperparameter 'model.hiden' for _Outer (x on y). Did you mean "
            "'model.hidden'? Valid keys: model.hidden, model.lr",
        ),
        ({"model.lr": -1}, "hyperparameter 'model.lr' of _Outer (x on y) must be > 0, got -1.0"),
        ({"model": {"lr": "fast"}}, "hyperparameter 'model.lr' of _Outer (x on y) must be float"),
        (
            {"model_hidden": 3},
            "hyperparameter 'model_hidden' of _Outer (x on y) is now 'model.hidden': write "
            "model.hidden=... instead",
        ),
        (
            {"model": True},
            "hyperparameter 'model' of _Outer (x on y) is a nested config, not a value: set its "
            "fields as 'model.KEY' (e.g. model.hidden=...); the former 'model' switch is now "
            "'oracle'",
        ),
        ({"lr.x": 3}, "unknown hyperparameter 'lr.x' for _Outer (x on y). Did you mean 'lr'?"),
    ],
)
def test_nested_override_errors_name_the_full_path(overrides, expected):
    with pytest.raises(ConfigError) as e:
        apply_overrides(_Outer(), overrides, where="x on y")
    assert str(e.value).startswith(expected)
    assert "\n" not in str(e.value)


def test_check_config_descends_into_nested_configs():
    with pytest.raises(ConfigError, match=r"'model.hidden' of _Outer must be >= 1, got 0"):
        check_config(_Outer(model=_Inner(hidden=0)))


# ---------------------------------------------------------------- declared ranges
@dataclass(frozen=True)
class _Ranged(AlgoConfig):
    lr: PositiveFloat = 1e-3
    """test"""
    gamma: PositiveFraction = 0.99
    """test"""
    p: UnitInterval = 0.5
    """test"""
    hidden: PositiveInt = 2
    """test"""
    warmup: NonNegativeInt = 0
    """test"""
    decay: NonNegativeFloat = 0.0
    """test"""
    factor: Annotated[float, Range(gt=1, lt=10)] = 2.0
    """test"""
    epochs: PositiveInt | None = None
    """test"""
    sizes: tuple[PositiveInt, ...] = (3, 3)
    """test"""
    schedule: tuple[NonNegativeInt, PositiveInt] | None = None
    """test"""
    cost: NonNegativeFloat | tuple[NonNegativeFloat, ...] = 1.0
    """test"""


def test_range_contains_and_reads():
    assert 0.5 in Range(gt=0) and 0 not in Range(gt=0) and 0 in Range(ge=0)
    assert 1 in Range(ge=0, le=1) and 1 not in Range(ge=0, lt=1)
    assert float("nan") not in Range(gt=0) and float("inf") in Range(gt=0)
    assert [str(r) for r in (Range(gt=0), Range(ge=1), Range(le=2), Range(lt=0.5))] == [
        "> 0",
        ">= 1",
        "<= 2",
        "< 0.5",
    ]
    assert str(Range(ge=0, le=1)) == "in [0, 1]" and str(Range(gt=0, le=1)) == "in (0, 1]"
    assert str(Range(gt=1, lt=10)) == "in (1, 10)" and str(Range()) == "any number"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("lr", -1, "must be > 0, got -1.0"),
        ("lr", 0.0, "must be > 0, got 0.0"),
        ("gamma", 0, "must be in (0, 1], got 0.0"),
        ("gamma", 1.01, "must be in (0, 1], got 1.01"),
        ("p", -0.1, "must be in [0, 1], got -0.1"),
        ("hidden", 0, "must be >= 1, got 0"),
        ("warmup", -1, "must be >= 0, got -1"),
        ("decay", -1e-9, "must be >= 0, got -1e-09"),
        ("factor", 1, "must be in (1, 10), got 1.0"),
        ("epochs", 0, "must be >= 1, got 0"),
        ("sizes", [3, 0], "must have every element >= 1, got (3, 0)"),
        ("schedule", [0, 0], "must have element 2 >= 1, got (0, 0)"),
        ("cost", -1, "must be >= 0, got -1.0"),
        ("cost", [1, -1], "must have every element >= 0, got (1.0, -1.0)"),
    ],
)
def test_out_of_range_overrides_fail_in_one_line(key, value, why):
    with pytest.raises(ConfigError) as e:
        apply_overrides(_Ranged(), {key: value}, where="x on y")
    assert str(e.value) == f"hyperparameter {key!r} of _Ranged (x on y) {why}"


def test_in_range_overrides_are_coerced_through_annotations():
    cfg = apply_overrides(
        _Ranged(),
        {
            "lr": 1,
            "gamma": 1,
            "p": 0,
            "warmup": 0,
            "epochs": None,
            "sizes": [1, 5],
            "schedule": [0, 1],
            "cost": [0, 2],
        },
    )
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.gamma == 1.0 and cfg.p == 0.0
    assert cfg.sizes == (1, 5) and cfg.schedule == (0, 1) and cfg.cost == (0.0, 2.0)
    with pytest.raises(ConfigError, match=r"'hidden' of _Ranged must be int, got 2.5 \(float\)"):
        apply_overrides(_Ranged(), {"hidden": 2.5})
    with pytest.raises(ConfigError, match=r"'epochs' of _Ranged must be int \| None"):
        apply_overrides(_Ranged(), {"epochs": "x"})


def test_scientific_notation_text_is_a_float_for_float_fields_only():
    """YAML 1.1 reads ``1e-3`` as text; float fields take the number, other fields do not."""
    assert apply_overrides(_Cfg(), {"lr": "1e-3"}).lr == 0.001
    assert apply_overrides(_Cfg(), {"lr": "-2.5E+2", "target": "3e2"}).target == 300.0
    assert apply_overrides(_Ranged(), {"lr": "5e-4"}).lr == 5e-4
    assert apply_overrides(_Cfg(), {"mode": "1e-3"}).mode == "1e-3"  # a str field keeps text
    for key, value in (("layers", "1e3"), ("lr", "fast"), ("lr", "nan"), ("lr", "1e")):
        with pytest.raises(ConfigError, match=f"'{key}'.*must be"):
            apply_overrides(_Cfg(), {key: value})
    with pytest.raises(ConfigError, match=r"must be > 0, got -0\.001"):
        apply_overrides(_Ranged(), {"lr": "-1e-3"})


def _config_classes() -> list[type]:
    from algorithms.agents.model_based_sac import MBPOModelConfig
    from algorithms.learners.sac import SACLearnerConfig
    from algorithms.models.ensemble_config import EnsembleConfig
    from algorithms.models.learned import LearnedModelConfig
    from algorithms.pets import PETSModelConfig
    from algorithms.planners.ilqg import ILQGOptions

    return [get_algorithm(n).Config for n in ALGORITHMS.names()] + [
        SACLearnerConfig,
        EnsembleConfig,
        LearnedModelConfig,
        PETSModelConfig,
        MBPOModelConfig,
        ILQGOptions,
    ]


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__qualname__)
def test_defaults_satisfy_their_declared_ranges(cls):
    check_config(cls())
    hints = typing.get_type_hints(cls, include_extras=True)
    ranged = [k for k, tp in hints.items() if "Range(" in repr(tp)]
    numeric = [k for k, tp in typing.get_type_hints(cls).items() if _is_number_type(tp)]
    missing = sorted(set(numeric) - set(ranged) - UNRANGED.get(cls.__qualname__, set()))
    assert not missing, f"{cls.__qualname__}: numeric fields without a declared range: {missing}"


#: numeric fields whose every value is valid (a target, a bound whose sign is free)
UNRANGED = {
    "SACConfig": {"target_entropy"},
    "TDMPC2Config": {"vmin", "vmax", "log_std_min", "log_std_max"},
    "SACLearnerConfig": {"target_entropy"},
    **{
        name: {"init_max_logvar", "init_min_logvar"}
        for name in ("EnsembleConfig", "LearnedModelConfig", "PETSModelConfig", "MBPOModelConfig")
    },
}


def _is_number_type(tp: object) -> bool:
    args = typing.get_args(tp)
    if tp in (int, float):
        return True
    return bool(args) and any(a is not type(None) and _is_number_type(a) for a in args)


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_per_task_defaults_satisfy_their_declared_ranges(name):
    """The values a plugin fills in per task (MBPO's table, PILCO's task entries) fit too."""
    cls = get_algorithm(name)
    for task_name in TASKS.names():
        task = TASKS[task_name].resolve()
        try:
            cls.check_task(task, cls.Config())
        except ConfigError:
            continue
        check_config(cls.resolve_config(task, cls.Config()), where=f"{name} on {task_name}")
