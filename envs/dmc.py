"""DeepMind Control Suite tasks (Tassa et al. 2018) as tasks of this suite: ``dmc:<domain>-<task>``.

Every state-based task of ``dm_control.suite`` but ``lqr`` (unbounded actions) and
``quadruped-escape`` (its reset needs an OpenGL context) is a task here (``make list`` prints
them), e.g.
``dmc:cartpole-swingup``, ``dmc:cheetah-run``, ``dmc:ball_in_cup-catch``. The protocol is
tdmpc2's (``tdmpc2/envs/dmcontrol.py`` @ e9f5932), so that returns compare with the scores its
repository ships for TD-MPC2, SAC and DreamerV3 (``docs/tasks.md``):

- the observation dict flattened in the suite's key order, float64;
- **action repeat 2** on every task: one agent step holds its action for two control steps and
  returns the two rewards summed; an episode is the suite's usual 1000 control steps, i.e. 500
  agent steps, and returns stay on the 0-1000 scale. ``dmc:<domain>-<task>@<k>`` repeats ``k``
  times instead (``@1``: the suite's own step; ``@4``, ``@8``: PlaNet's and Dreamer's repeats
  for cheetah and cartpole). Budgets (``STEPS``) count agent steps, as tdmpc2's ``step``;
- episodes never terminate (``terminated`` is always false: no suite task but ``lqr``, which is
  not offered, ends early); they are cut by the time limit;
- seeds: ``env.reset(seed=s)`` reseeds the task's random state (the suite's ``task_kwargs
  random``), which draws the initial state.

Reward functions: at action repeat 1, the tasks whose reward is a function of the observation and
the action have exact batched torch ``reward_fn``\\ s (:mod:`envs.dmc_rewards`, checked against
``env.step`` by the contract test): cartpole balance, balance_sparse, swingup, swingup_sparse,
pendulum swingup, reacher easy and hard. With action repeat ``k > 1`` the summed reward also
depends on the ``k - 1`` intermediate states, which the observation does not hold, so every
task at the default repeat gets a learned reward (learned-model plugins learn it; see the README's
table of what each plugin needs). ``termination_fn`` (never) is exact for every task.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

#: tdmpc2's action repeat for every DMC task (``tdmpc2/envs/dmcontrol.py``: ``action_repeat=2``).
DEFAULT_ACTION_REPEAT = 2

#: ``(domain, task) -> reward_fn`` entry point, valid at action repeat 1 only (module docstring).
EXACT_REWARDS: dict[tuple[str, str], str] = {
    ("cartpole", "balance"): "envs.dmc_rewards:cartpole_smooth",
    ("cartpole", "swingup"): "envs.dmc_rewards:cartpole_smooth",
    ("cartpole", "balance_sparse"): "envs.dmc_rewards:cartpole_sparse",
    ("cartpole", "swingup_sparse"): "envs.dmc_rewards:cartpole_sparse",
    ("pendulum", "swingup"): "envs.dmc_rewards:pendulum_swingup",
    ("reacher", "easy"): "envs.dmc_rewards:reacher_easy",
    ("reacher", "hard"): "envs.dmc_rewards:reacher_hard",
}

#: Suite tasks not offered, with the reason (``(domain, None)``: the whole domain).
EXCLUDED: dict[tuple[str, str | None], str] = {
    ("lqr", None): "unbounded actions and no time limit",
    ("quadruped", "escape"): "its reset uploads the terrain through an OpenGL context",
}


def _excluded(domain: str, task: str) -> str | None:
    return EXCLUDED.get((domain, None)) or EXCLUDED.get((domain, task))


def _suite() -> Any:
    """``dm_control.suite``, imported without an OpenGL backend (nothing here renders; without
    a display the suite's default, GLFW, only warns)."""
    os.environ.setdefault("MUJOCO_GL", "disable")
    logging.getLogger("absl").setLevel(logging.ERROR)  # its renderer notes, XML deprecations
    from dm_control import suite

    return suite


def suite_tasks() -> list[tuple[str, str]]:
    """Every ``(domain, task)`` of ``dm_control.suite.ALL_TASKS`` offered here."""
    suite = _suite()

    return [(d, t) for d, t in suite.ALL_TASKS if _excluded(d, t) is None]


def task_names() -> list[str]:
    """``dmc:<domain>-<task>`` of every offered task."""
    return [f"dmc:{d}-{t}" for d, t in suite_tasks()]


def parse(rest: str) -> tuple[str, str, int]:
    """``"cartpole-swingup@1" -> ("cartpole", "swingup", 1)``; raises ``ValueError`` with the fix."""
    body, _, repeat_s = rest.partition("@")
    domain, sep, task = body.partition("-")
    if not sep or not domain or not task:
        raise ValueError(
            f"DMC task {rest!r} must look like dmc:<domain>-<task>[@<action repeat>], e.g. "
            "dmc:cartpole-swingup or dmc:cheetah-run@4"
        )
    if repeat_s:
        if not repeat_s.isdigit() or int(repeat_s) < 1:
            raise ValueError(
                f"DMC task dmc:{rest}: the action repeat after '@' must be a positive integer, "
                f"e.g. dmc:{body}@1"
            )
        repeat = int(repeat_s)
    else:
        repeat = DEFAULT_ACTION_REPEAT
    offered = suite_tasks()
    if (domain, task) not in offered:
        import difflib

        names = [f"{d}-{t}" for d, t in offered]
        close = difflib.get_close_matches(body, names, n=1, cutoff=0.5)
        hint = f" Did you mean 'dmc:{close[0]}'?" if close else ""
        reason = _excluded(domain, task)
        why = f" (not offered: {reason})" if reason else ""
        raise ValueError(
            f"unknown DMC task 'dmc:{body}'{why}.{hint} DMC tasks: "
            + ", ".join(f"dmc:{n}" for n in names)
        )
    return domain, task, repeat


def entry(rest: str):
    """The :class:`~envs.spec.TaskEntry` of ``dmc:<rest>`` (the registry's ``dmc`` namespace)."""
    from envs.spec import TaskEntry

    domain, task, repeat = parse(rest)
    name = f"dmc:{rest}"
    return TaskEntry(
        name=name,
        make="envs.dmc:make_env",
        kwargs={"domain": domain, "task": task, "action_repeat": repeat},
        max_episode_steps=math.ceil(_step_limit(domain, task) / repeat),
        reward_fn=EXACT_REWARDS.get((domain, task)) if repeat == 1 else None,
        termination_fn="envs.dmc_rewards:never",
        tags=("dmc",),
    )


def _step_limit(domain: str, task: str) -> int:
    """Control steps per episode of a suite task (its time limit over its control timestep)."""
    env = _load(domain, task, 0)
    limit = env._step_limit  # dm_control keeps it private
    if not math.isfinite(limit):
        raise ValueError(f"DMC task {domain}-{task} has no time limit")
    return int(limit)


def _load(domain: str, task: str, seed: int | None) -> Any:
    return _suite().load(domain, task, task_kwargs={"random": seed})


class DMCEnv(gym.Env):
    """A ``dm_control.suite`` task as a gymnasium env (the protocol of the module docstring).

    Observations ``[O]`` float64 (the suite's dict flattened), actions ``[A]`` in the suite's
    bounds (``[-1, 1]`` on every offered task), reward the sum over the ``action_repeat`` control
    steps, ``terminated`` always false, ``truncated`` when the suite's time limit ends the episode.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, domain: str, task: str, action_repeat: int = DEFAULT_ACTION_REPEAT) -> None:
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.domain, self.task, self.action_repeat = domain, task, int(action_repeat)
        self._env = _load(domain, task, None)
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(
            np.asarray(spec.minimum, np.float32).reshape(spec.shape),
            np.asarray(spec.maximum, np.float32).reshape(spec.shape),
            dtype=np.float32,
        )
        obs_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)

    @staticmethod
    def _flat(observation: Any) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in observation.values()])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            # the suite draws initial states from the task's RandomState (``task_kwargs random``)
            self._env.task._random = np.random.RandomState(seed)
        ts = self._env.reset()
        return self._flat(ts.observation), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, np.float64).reshape(self.action_space.shape)
        reward = 0.0
        for _ in range(self.action_repeat):
            ts = self._env.step(action)
            reward += float(ts.reward or 0.0)
            if ts.last():
                break
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = bool(ts.last() and not terminated)
        return self._flat(ts.observation), reward, terminated, truncated, {}

    @property
    def physics(self) -> Any:
        """The suite's ``Physics`` (tests read the simulator through it)."""
        return self._env.physics


def make_env(domain: str, task: str, action_repeat: int = DEFAULT_ACTION_REPEAT) -> DMCEnv:
    """Entry point of every ``dmc:`` task."""
    return DMCEnv(domain, task, action_repeat)
