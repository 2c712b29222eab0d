"""Any gymnasium environment as a task of this suite: ``gym:<id>``.

``gym:Swimmer-v5``, ``gym:LunarLanderContinuous-v3`` or one's own environment, registered with
gymnasium by a module that ``gym:<module>:<id>`` names (gymnasium's own ``"module:id"`` form:
the module is imported, in every trial's process, before the id is looked up). Such a task knows
nothing beyond ``env.step``:

- no reward, termination or dynamics functions: learned-model plugins learn the reward (and a
  termination predictor: the env may end episodes) next to their dynamics; plugins that need an
  exact function, the simulator or a linearization are refused before any trial starts;
- observations: a ``Box`` of any shape, or a ``Dict`` / ``Tuple`` of them, flattened
  (``gymnasium.wrappers.FlattenObservation``); actions: a ``Box`` with finite bounds (continuous
  plugins) or ``Discrete`` (discrete plugins); anything else is refused with the reason;
- the episode length is the id's registered ``max_episode_steps`` (1000 when it has none).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

#: Episode length of an id registered without ``max_episode_steps``.
DEFAULT_MAX_EPISODE_STEPS = 1000


def _spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id`` (``module:id`` imports ``module`` first)."""
    module, sep, name = env_id.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(
                f"gym:{env_id}: cannot import module {module!r} ({e}); gym:<module>:<id> needs a "
                "module on the Python path that registers <id> with gymnasium"
            ) from None
    try:
        return gym.spec(name)
    except gym.error.Error as e:
        raise ValueError(
            f"unknown gymnasium id {name!r} in task 'gym:{env_id}': {e} "
            "(`python -c 'import gymnasium; gymnasium.pprint_registry()'` lists the ids)"
        ) from None


def _flatten(env: gym.Env) -> gym.Env:
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return env
    if isinstance(space, gym.spaces.Box | gym.spaces.Dict | gym.spaces.Tuple):
        return gym.wrappers.FlattenObservation(env)
    raise ValueError(
        f"observation space {space} is not supported: a Box, or a Dict or Tuple of Boxes "
        "(flattened) is"
    )


def make_env(id: str) -> gym.Env:
    """Entry point of every ``gym:`` task: ``gymnasium.make(id)`` with its observation flattened."""
    return _flatten(gym.make(id))


def check_spaces(name: str, env: gym.Env) -> None:
    """Raise ``ValueError`` naming the problem when the spaces are not ones the plugins take."""
    act = env.action_space
    if isinstance(act, gym.spaces.Box):
        if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
            raise ValueError(
                f"task {name!r}: its Box action space has infinite bounds ({act}); continuous "
                "plugins need finite ones (wrap the env with gymnasium.wrappers.ClipAction and "
                "register that)"
            )
    elif not isinstance(act, gym.spaces.Discrete):
        raise ValueError(
            f"task {name!r}: action space {act} is not supported (a Box for continuous plugins, "
            "Discrete for discrete ones)"
        )


def entry(env_id: str) -> Any:
    """The :class:`~envs.spec.TaskEntry` of ``gym:<env_id>`` (the registry's ``gym`` namespace):
    checked now, so that a bad id or space fails before any trial."""
    from envs.spec import TaskEntry

    if not env_id:
        raise ValueError("task 'gym:' names no id: write gym:<id>, e.g. gym:Swimmer-v5")
    spec = _spec(env_id)
    name = f"gym:{env_id}"
    env = make_env(env_id)
    try:
        check_spaces(name, env)
    finally:
        env.close()
    return TaskEntry(
        name=name,
        make="envs.generic:make_env",
        kwargs={"id": env_id},
        max_episode_steps=int(spec.max_episode_steps or DEFAULT_MAX_EPISODE_STEPS),
        tags=("gym",),
    )
