"""The plugin interface every model-based RL family implements.

The driver (``benchmark/driver.py``) owns the environments, the budget, evaluation and seeding, so
every algorithm is measured the same way. An algorithm only answers these calls, in this order::

    algo = Algo(task, config, ctx)
    for each episode (training or evaluation):
        algo.reset(explore=...)                  # new episode: clear planner warm starts, etc.
        repeat:
            a = algo.act(obs, explore=..., info=info)
            (training only) algo.observe(Transition(...)); metrics = algo.update()
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
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from envs.spec import Capability, TaskSpec

__all__ = [
    "AlgoConfig",
    "Algorithm",
    "Capability",
    "ConfigError",
    "RunContext",
    "Transition",
    "apply_overrides",
]


class ConfigError(ValueError):
    """A bad hyperparameter override or an algorithm/task pair that cannot run."""


@dataclass(frozen=True)
class AlgoConfig:
    """Base of every algorithm's frozen config dataclass.

    Subclasses document each field with a docstring naming the source of its default
    (paper, table or official code). Overrides go through :func:`apply_overrides`.
    """


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

    def update(self) -> Mapping[str, float]:
        """Called once after every training env step; learn here. Returns metrics to log."""
        return {}

    def on_episode_end(self) -> Mapping[str, float]:
        """Called after every training episode; episodic learners train here."""
        return {}

    def eval_metrics(self) -> Mapping[str, float]:
        """Diagnostics logged at each evaluation (model error, rollout horizon, ...)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training (weights, optimizers, buffers, rng states)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027
        """Inverse of :meth:`state_dict`."""

    @classmethod
    def required_capabilities(cls, config: AlgoConfig) -> frozenset[Capability]:
        """What the task must offer under ``config`` (e.g. an oracle-model option adds DYNAMICS)."""
        return cls.requires

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        """Raise :class:`ConfigError` when ``task`` lacks a capability ``config`` needs."""
        missing = sorted(str(c) for c in cls.required_capabilities(config) - task.capabilities)
        if missing:
            raise ConfigError(
                f"algorithm {cls.name!r} needs {', '.join(missing)}, which task {task.name!r} "
                f"does not offer (it offers {', '.join(sorted(map(str, task.capabilities)))}). "
                "Pick another task or algorithm."
            )


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp``; returns the (possibly coerced) value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _type_ok(value, arm)
            if ok:
                return True, v
        return False, value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and str(value).lower() in allowed:
            # YAML and ``SET=algo.model=true`` read a bare true/false as a bool
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
        return False, value
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
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        try:  # a nested config given as a mapping: override its fields, checked the same way
            return True, apply_overrides(tp(), value)
        except ConfigError:
            return False, value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def apply_overrides(config: AlgoConfig, overrides: Mapping[str, Any], *, where: str = "") -> Any:
    """``dataclasses.replace`` with checks: unknown keys and ill-typed values raise ConfigError."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    at = f" ({where})" if where else ""
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown hyperparameter {key!r} for {cls.__qualname__}{at}.{hint} "
                f"Valid keys: {', '.join(sorted(fields))}"
            )
        ok, coerced = _type_ok(value, hints[key])
        if not ok:
            raise ConfigError(
                f"hyperparameter {key!r} of {cls.__qualname__}{at} must be {hints[key]}, "
                f"got {value!r} ({type(value).__name__})"
            )
        clean[key] = coerced
    return dataclasses.replace(config, **clean)
