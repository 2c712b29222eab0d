"""Registry, config validation and the plugin contract every algorithm must meet."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass

import pytest

from algorithms import ALGORITHMS, get_algorithm
from algorithms.api import AlgoConfig, Algorithm, ConfigError, apply_overrides
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
    docs: dict[str, str] = {}
    for klass in reversed(cls.Config.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not AlgoConfig:
            docs.update(_field_docstrings(klass))
    missing = [f.name for f in dataclasses.fields(cls.Config) if f.name not in docs]
    assert not missing, f"{name}: config fields without a docstring: {missing}"
    cls.Config()  # defaults construct


def test_bare_yaml_booleans_fill_string_literals():
    """``SET="cem.model=true"`` and ``{model: true}`` in YAML arrive as a bool."""
    from algorithms.cem import CEMConfig

    assert apply_overrides(CEMConfig(), {"model": True}).model == "true"
    with pytest.raises(ConfigError):
        apply_overrides(CEMConfig(), {"model": False})  # "false" is not a choice
