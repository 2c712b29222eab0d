"""The plugin interface every model-based RL family implements.

The driver (``benchmark/driver.py``) owns the environments, the budget, evaluation and seeding, so
every algorithm is measured the same way. An algorithm only answers these calls, in this order::

    algo = Algo(task, config, ctx)
    for each episode (training or evaluation):
        algo.reset(explore=...)                  # new episode: clear planner warm starts, etc.
        repeat:
            a = algo.act(obs, explore=..., info=info)
            (training only) algo.observe(Transition(...)); metrics = algo.update()
            (evaluation only) algo.observe_eval(Transition(...))
        (training only) metrics = algo.on_episode_end()
    at each evaluation: metrics = algo.eval_metrics()

- per-step off-policy learners (SAC, MBPO, MVE, STEVE) learn in ``update`` (called every env step);
- MPC planners (RS, CEM, MPPI, PETS, iLQG-MPC) plan in ``act`` and fit their model in ``update``
  or ``on_episode_end``;
- episodic learners (PILCO) do all their work in ``on_episode_end``;
- known-model controllers (LQR) compute their gain in ``__init__`` and only ``act``;
- discrete-action algorithms (MuZero-style) return an ``int`` from ``act``.

``explore=False`` asks for the deterministic evaluation policy. Evaluation episodes may interleave
with a training episode (the driver evaluates every N env steps), so an algorithm that keeps
per-episode state (a warm-started plan) keeps one slot per value of ``explore``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NamedTuple

import numpy as np
import torch

from envs.spec import Capability, TaskSpec

__all__ = [
    "AlgoConfig",
    "Algorithm",
    "Capability",
    "ConfigError",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveFraction",
    "PositiveInt",
    "Range",
    "RunContext",
    "Transition",
    "UnitInterval",
    "apply_overrides",
    "check_config",
    "config_paths",
    "config_value",
    "flatten_overrides",
    "float_literal",
]


class ConfigError(ValueError):
    """A bad hyperparameter override or an algorithm/task pair that cannot run."""


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric config field, declared once in its annotation::

        lr: Annotated[float, Range(gt=0)] = 3e-4    # or the alias PositiveFloat
        hidden: tuple[PositiveInt, ...] = (200, 200)

    :func:`apply_overrides` checks it (and :func:`check_config` every field), so a bad value
    fails before any trial starts. Bounds left ``None`` are open.
    """

    gt: float | None = None
    """Exclusive lower bound."""
    ge: float | None = None
    """Inclusive lower bound."""
    lt: float | None = None
    """Exclusive upper bound."""
    le: float | None = None
    """Inclusive upper bound."""

    def __contains__(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def __str__(self) -> str:
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            left = "[" if self.ge is not None else "("
            right = "]" if self.le is not None else ")"
            return f"in {left}{low:g}, {high:g}{right}"
        if low is not None:
            return f"{'>=' if self.ge is not None else '>'} {low:g}"
        if high is not None:
            return f"{'<=' if self.le is not None else '<'} {high:g}"
        return "any number"


PositiveFloat = Annotated[float, Range(gt=0)]
"""A float > 0: learning rates, scales, tolerances."""
NonNegativeFloat = Annotated[float, Range(ge=0)]
"""A float >= 0: penalties, weight decays, thresholds where 0 switches something off."""
UnitInterval = Annotated[float, Range(ge=0, le=1)]
"""A float in [0, 1]: probabilities and fractions."""
PositiveFraction = Annotated[float, Range(gt=0, le=1)]
"""A float in (0, 1]: discounts, soft-update rates."""
PositiveInt = Annotated[int, Range(ge=1)]
"""An int >= 1: sizes, counts, horizons."""
NonNegativeInt = Annotated[int, Range(ge=0)]
"""An int >= 0: counts where 0 is meaningful (no warm-up steps, no retries)."""


@dataclass(frozen=True)
class AlgoConfig:
    """Base of every algorithm's frozen config dataclass.

    Subclasses document each field with a docstring naming the source of its default
    (paper, table or official code). Overrides go through :func:`apply_overrides`. A field may be
    a nested config dataclass (``sac: SACLearnerConfig``, ``model: LearnedModelConfig``); its
    fields are set by dotted path (``sac.lr``, ``model.hidden``).
    """

    renamed: ClassVar[Mapping[str, str]] = {}
    """Former keys -> the dotted path that replaced them. There are no aliases: an override with
    a former key fails with one line naming its new path. A key that is still a field (e.g.
    ``model``, now a nested config) maps to where its former meaning went."""


class Transition(NamedTuple):
    """One real env step as the driver hands it to :meth:`Algorithm.observe`."""

    obs: np.ndarray
    """``[O]`` observation before the step."""
    action: np.ndarray
    """``[A]`` action sent to the env (for discrete tasks: ``[1]`` holding the index)."""
    reward: float
    next_obs: np.ndarray
    """``[O]`` observation after the step (the true one, also when the episode ended)."""
    terminated: bool
    """The MDP ended (fall, goal): no bootstrapping."""
    truncated: bool
    """The time limit cut the episode: bootstrap as usual."""
    sim_state: np.ndarray | None = None
    """``[S]`` float64 MuJoCo state of ``obs`` (``info["sim_state"]`` on SIMULATOR tasks, else
    ``None``): what oracle rollouts of a model-based learner restart the simulator from."""
    next_sim_state: np.ndarray | None = None
    """``[S]`` likewise for ``next_obs``."""


@dataclass
class RunContext:
    """Per-trial resources. Every random number an algorithm draws comes from here."""

    seed: int
    np_rng: np.random.Generator
    torch_gen: torch.Generator
    """CPU generator for ``torch.randn(..., generator=...)``; sample on CPU then move if needed."""
    device: torch.device
    total_steps: int
    """The trial's budget in env steps (schedules such as MBPO's rollout length need it)."""

    def generator_state(self) -> dict[str, Any]:
        """The state of the trial's generators. The driver saves it with every checkpoint and
        restores it after :meth:`Algorithm.load_state_dict`: the one owner of generator state, so
        a plugin's ``state_dict`` (and the buffers and learners in it) leaves these generators
        out. A generator a part creates for itself (e.g. a CUDA generator seeded from
        ``torch_gen``) is that part's to save."""
        return {"np_rng": self.np_rng.bit_generator.state, "torch_gen": self.torch_gen.get_state()}

    def load_generator_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`generator_state`."""
        self.np_rng.bit_generator.state = state["np_rng"]
        self.torch_gen.set_state(state["torch_gen"])

    @classmethod
    def from_seed(cls, seed: int, *, device: str | torch.device = "cpu", total_steps: int = 0):
        """Derive every generator from one seed (distinct streams via ``SeedSequence``)."""
        ss = np.random.SeedSequence(seed)
        np_seed, torch_seed = ss.spawn(2)
        gen = torch.Generator().manual_seed(int(torch_seed.generate_state(1, np.uint64)[0] >> 1))
        return cls(
            seed=seed,
            np_rng=np.random.default_rng(np_seed),
            torch_gen=gen,
            device=torch.device(device),
            total_steps=total_steps,
        )


class Algorithm(ABC):
    """Base class of every plugin. See the module docstring for the call protocol."""

    name: ClassVar[str]
    """Registry key."""
    Config: ClassVar[type[AlgoConfig]]
    """The frozen config dataclass."""
    requires: ClassVar[frozenset[Capability]] = frozenset()
    """What the task must offer; checked before any trial starts."""

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        self.task = task
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray | int:
        """Action for ``obs`` (``[O]``): ``[A]`` within the bounds, or an index for discrete tasks.

        ``info`` is the env's last info dict (``info["sim_state"]`` on SIMULATOR tasks).
        """

    def random_action(self) -> np.ndarray:
        """A uniform action within the bounds, from the trial's generator (exploration phases)."""
        return self.ctx.np_rng.uniform(self.task.act_low, self.task.act_high).astype(np.float32)

    def reset(self, *, explore: bool) -> None:  # noqa: B027  (optional hook)
        """A new episode starts (training when ``explore``, else evaluation)."""

    def observe(self, transition: Transition) -> None:  # noqa: B027  (optional hook)
        """Store one real transition."""

    def observe_eval(self, transition: Transition) -> None:  # noqa: B027  (optional hook)
        """One real transition of an evaluation episode: held-out data for diagnostics (a latent
        model's prediction errors), never for learning."""

    def update(self) -> Mapping[str, float]:
        """Called once after every training env step; learn here. Returns metrics to log."""
        return {}

    def on_episode_end(self) -> Mapping[str, float]:
        """Called after every training episode; episodic learners train here."""
        return {}

    def eval_metrics(self) -> Mapping[str, float]:
        """Diagnostics logged at each evaluation (model error, rollout horizon, ...)."""
        return {}

    #: The discount of :meth:`state_value` (a value-based learner sets its ``gamma``).
    value_discount: float | None = None

    def state_value(self, obs: np.ndarray) -> float | None:
        """The agent's own estimate of the ``value_discount``-discounted return from ``obs``
        (``[O]``) under its evaluation policy; ``None``: it has no value function. The driver logs
        it at every evaluation start state against the return actually obtained (value
        overestimation: ``value_pred``, ``value_return``, ``value_bias``)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training (weights, optimizers, buffers, counters). Not the
        trial's generators: the driver saves those (:meth:`RunContext.generator_state`)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027
        """Inverse of :meth:`state_dict`."""

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        """What the task must offer under ``config`` (e.g. an oracle-model option adds DYNAMICS)."""
        return cls.requires

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """``config`` with every value decided per task filled in (MBPO's per-task table, SAC's
        ``-|A|`` entropy target, ...): what the trial runs with, recorded in ``meta.json`` before
        any trial starts. Idempotent; the constructor may call it again on a config passed
        directly. Default: ``config`` unchanged."""
        return config

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        """Raise :class:`ConfigError` when ``task`` lacks a capability ``config`` needs."""
        lacking = cls.required_capabilities(config) - task.capabilities
        if not lacking:
            return
        missing = ", ".join(sorted(map(str, lacking)))
        fixes = []
        functions = lacking & {Capability.REWARD_FN, Capability.TERMINATION_FN}
        if functions and getattr(config, "oracle", False):
            fixes.append("oracle=true scores with the task's own functions: set oracle=false")
        elif functions and hasattr(getattr(config, "model", None), "termination"):
            if Capability.REWARD_FN in lacking:
                fixes.append("set model.learn_reward=true to learn the reward")
            if Capability.TERMINATION_FN in lacking:
                fixes.append("set model.termination.learn=true to learn the termination")
        fix = f" Or {'; '.join(fixes)}." if fixes else ""
        raise ConfigError(
            f"algorithm {cls.name!r} needs {missing}, which task {task.name!r} does not offer "
            f"(it offers {', '.join(sorted(map(str, task.capabilities)))}). Pick another task "
            f"or algorithm.{fix}"
        )


_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end`` (CleanRL's
    ``linear_schedule``): the exploration epsilon of ``dqn`` and of ``muzero``'s ``eps_greedy``."""
    value = (end - start) / duration * t + start
    return max(value, end) if end <= start else min(value, end)


def float_literal(value: Any) -> float | None:
    """The float a string spells in decimal or scientific notation (``"1e-3"``), else ``None``.

    YAML 1.1 reads ``1e-3`` (no dot) as a string; float fields take it as the number it means.
    """
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return None


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp``; returns the (possibly coerced) value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Annotated:  # ranges are checked by _range_error once the type fits
        return _type_ok(value, typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _type_ok(value, arm)
            if ok:
                return True, v
        return False, value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and str(value).lower() in allowed:
            # YAML and ``SET=algo.key=true`` read a bare true/false as a bool
            return True, str(value).lower()
        return value in allowed, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        number = float_literal(value)
        return number is not None, value if number is None else number
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            return False, value
        out = []
        for v, a in zip(value, args, strict=True):
            ok, cv = _type_ok(v, a)
            if not ok:
                return False, value
            out.append(cv)
        return True, tuple(out)
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def _range_error(value: Any, tp: Any) -> str | None:
    """Why ``value`` (already type-checked and coerced) breaks a :class:`Range` ``tp`` declares:
    ``"be > 0"``, or ``None`` when it fits."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        for rng in meta:
            if isinstance(rng, Range) and value not in rng:
                return f"be {rng}"
        return _range_error(value, base)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            if _type_ok(value, arm)[0]:
                return _range_error(value, arm)
        return None
    if origin is tuple and isinstance(value, tuple):
        args = typing.get_args(tp)
        every = len(args) == 2 and args[1] is Ellipsis
        if every:
            args = (args[0],) * len(value)
        for i, (v, a) in enumerate(zip(value, args, strict=False)):
            why = _range_error(v, a)
            if why:
                which = "every element" if every else f"element {i + 1}"
                return f"have {which} {why.removeprefix('be ')}"
    return None


def _type_name(tp: Any) -> str:
    """``int``, ``float | None``, ``tuple[int, ...]``: an annotation as it reads in the source."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"tuple[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]"
    if tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_field(owner: str, key: str, value: Any, tp: Any, at: str) -> Any:
    """``value`` coerced to the field's type; ConfigError when its type or range is wrong.
    ``owner`` is the top-level config's name, ``key`` the field's full dotted path."""
    ok, coerced = _type_ok(value, tp)
    if not ok:
        raise ConfigError(
            f"hyperparameter {key!r} of {owner}{at} must be {_type_name(tp)}, "
            f"got {value!r} ({type(value).__name__})"
        )
    why = _range_error(coerced, tp)
    if why:
        raise ConfigError(f"hyperparameter {key!r} of {owner}{at} must {why}, got {coerced!r}")
    return coerced


def flatten_overrides(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One spelling for nested overrides: ``{"model": {"hidden": 400}, "sac.lr": 1e-3}`` ->
    ``{"model.hidden": 400, "sac.lr": 0.001}`` (nested mappings become dotted keys; a later key
    wins over an earlier one for the same path, so merged layers are plain ``dict`` updates)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_overrides(value, path + "."))
        else:
            out[path] = value
    return out


def config_paths(config: Any, prefix: str = "") -> list[str]:
    """Every settable dotted path of a config dataclass (nested configs expanded)."""
    out: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += config_paths(value, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def config_value(config: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``"model.hidden"``) of a config dataclass."""
    for name in path.split("."):
        config = getattr(config, name)
    return config


def _unknown(top: Any, path: str, level: Any, prefix: str, at: str) -> ConfigError:
    """The error for an unknown dotted ``path``: its new name when it is a former key, else the
    nearest valid path and the valid keys at the level where it failed."""
    import difflib

    owner = type(top).__qualname__
    new = getattr(type(top), "renamed", {}).get(path)
    if new is not None:
        return ConfigError(
            f"hyperparameter {path!r} of {owner}{at} is now {new!r}: write {new}=... instead"
        )
    close = difflib.get_close_matches(path, config_paths(top), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    keys = ", ".join(sorted(prefix + f.name for f in dataclasses.fields(level)))
    return ConfigError(f"unknown hyperparameter {path!r} for {owner}{at}.{hint} Valid keys: {keys}")


def _apply(top: Any, config: Any, flat: Mapping[str, Any], prefix: str, at: str) -> Any:
    """:func:`apply_overrides` at one nesting level (``prefix``: the dotted path to it)."""
    owner = type(top).__qualname__
    hints = typing.get_type_hints(type(config), include_extras=True)
    names = {f.name for f in dataclasses.fields(config)}
    clean: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        head, dot, rest = key.partition(".")
        path = prefix + key
        if head not in names:
            raise _unknown(top, path, config, prefix, at)
        if dataclasses.is_dataclass(getattr(config, head)):
            if not dot:
                former = getattr(type(top), "renamed", {}).get(prefix + head)
                note = f"; the former {path!r} switch is now {former!r}" if former else ""
                first = dataclasses.fields(getattr(config, head))[0].name
                raise ConfigError(
                    f"hyperparameter {path!r} of {owner}{at} is a nested config, not a value: "
                    f"set its fields as '{path}.KEY' (e.g. {path}.{first}=...){note}"
                )
            nested.setdefault(head, {})[rest] = value
        elif dot:
            raise _unknown(top, path, config, prefix, at)
        else:
            clean[head] = _check_field(owner, path, value, hints[head], at)
    for head, sub in nested.items():
        clean[head] = _apply(top, getattr(config, head), sub, f"{prefix}{head}.", at)
    try:
        return dataclasses.replace(config, **clean)
    except ValueError as e:  # a config's own consistency check (an ensemble's elites <= members)
        raise ConfigError(f"{owner}{at}: {prefix}{e}; fix the overrides") from None


def apply_overrides(config: AlgoConfig, overrides: Mapping[str, Any], *, where: str = "") -> Any:
    """``dataclasses.replace`` with checks: unknown keys, ill-typed values and values outside the
    field's declared :class:`Range` raise ConfigError (one line naming the key and the fix).

    Keys are dotted paths into nested configs (``{"sac.lr": 1e-3, "model.hidden": 400}``) or
    nested mappings (``{"model": {"hidden": 400}}``), applied to the config's current nested
    values (a plugin's own nested defaults are kept). A former key (:attr:`AlgoConfig.renamed`)
    fails with its new path."""
    at = f" ({where})" if where else ""
    return _apply(config, config, flatten_overrides(overrides), "", at)


def check_config(config: Any, *, where: str = "", _top: Any = None, _prefix: str = "") -> None:
    """Check every field of a (resolved) config dataclass, nested configs included, against its
    type and declared range."""
    top = config if _top is None else _top
    hints = typing.get_type_hints(type(config), include_extras=True)
    at = f" ({where})" if where else ""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value, where=where, _top=top, _prefix=f"{_prefix}{f.name}.")
        else:
            _check_field(type(top).__qualname__, _prefix + f.name, value, hints[f.name], at)
