"""Small Gymnasium wrappers shared by the task modules.

- :class:`SimStateInfo` puts the full MuJoCo physics state into ``info["sim_state"]`` (the
  ``SIMULATOR`` capability: oracle planners restore it with :func:`restore_sim_state`).
- :class:`PrependObservation` prepends one scalar read from the simulator to the observation (used
  by Ant and Humanoid to carry the quantity their forward reward is computed from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


def _fullphysics() -> int:
    """``mjSTATE_FULLPHYSICS``: time, qpos, qvel, act, history, mocap, userdata, plugin state."""
    import mujoco

    return int(mujoco.mjtState.mjSTATE_FULLPHYSICS)


def get_sim_state(model: Any, data: Any) -> np.ndarray:
    """``[S]`` float64 copy of ``mj_getState(model, data, mjSTATE_FULLPHYSICS)``."""
    import mujoco

    sig = _fullphysics()
    state = np.empty(mujoco.mj_stateSize(model, sig), np.float64)
    mujoco.mj_getState(model, data, state, sig)
    return state


def restore_sim_state(model: Any, data: Any, state: np.ndarray) -> None:
    """Inverse of :func:`get_sim_state` (then ``mj_forward`` so derived quantities are fresh).

    Note: after ``mj_forward`` the body positions are those of ``qpos``; right after an env step
    MuJoCo still holds the positions of the last RK4 stage (see ``envs.mujoco`` docstrings), so an
    observation recomputed after a restore may differ from the env's in the last few digits.
    """
    import mujoco

    mujoco.mj_setState(model, data, np.asarray(state, np.float64), _fullphysics())
    mujoco.mj_forward(model, data)


class SimStateInfo(gym.Wrapper):
    """Adds ``info["sim_state"]`` (``[S]`` float64, ``mjSTATE_FULLPHYSICS``) after reset and step.

    Wrap a :class:`gymnasium.envs.mujoco.MujocoEnv` (or a wrapper around one).
    """

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._add_state(info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._add_state(info)

    def _add_state(self, info: dict[str, Any]) -> dict[str, Any]:
        env = self.env.unwrapped
        return {**info, "sim_state": get_sim_state(env.model, env.data)}  # type: ignore[attr-defined]


class PrependObservation(gym.ObservationWrapper):
    """``obs -> [fn(env.unwrapped), *obs]``: prepends one float64 scalar to a ``Box`` observation.

    ``fn`` reads the simulator *after* the wrapped env has stepped (or reset), i.e. from the same
    ``mjData`` the env just used for its reward.
    """

    def __init__(self, env: gym.Env, fn: Callable[[Any], float]) -> None:
        super().__init__(env)
        self._fn = fn
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and len(space.shape) == 1
        low = np.concatenate([[-np.inf], np.asarray(space.low, np.float64)])
        high = np.concatenate([[np.inf], np.asarray(space.high, np.float64)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        head = np.array([self._fn(self.env.unwrapped)], np.float64)
        return np.concatenate([head, np.asarray(observation, np.float64)])
