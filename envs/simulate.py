"""True-model ("oracle") rollouts of MuJoCo tasks: many action sequences from one simulator state.

:class:`SimulatorRollout` rolls ``N`` open-loop action sequences of ``H`` env steps forward from
``info["sim_state"]`` with MuJoCo's own batched ``mujoco.rollout`` (C++, no Python per physics
step) and returns the observations ``env.step`` would have returned::

    sim = SimulatorRollout(task)          # task: TaskSpec with Capability.SIMULATOR
    obs_seq = sim(info["sim_state"], actions)   # [S] float64, [N, H, A] -> [N, H + 1, O]

and, for closed-loop oracle rollouts of a policy, one env step from ``N`` *different* states::

    next_states, next_obs = sim.step(states, actions)   # [N, S], [N, A] -> [N, S], [N, O]

How it reproduces ``env.step``:

- every env step is ``frame_skip`` ``mj_step``\\ s with ``data.ctrl = action`` held (Gymnasium's
  ``do_simulation``), so the control sequence given to ``mujoco.rollout`` is each action repeated
  ``frame_skip`` times and the env-step states are every ``frame_skip``-th output state;
- the initial state is the ``mjSTATE_FULLPHYSICS`` vector of :func:`envs.wrappers.get_sim_state`;
  the constraint solver's warm start is not part of it, so contact-rich tasks can differ from the
  env in the solver's last digits (~1e-7 on Humanoid);
- observations come from the task's :class:`~envs.spec.StateObservation`: a vectorised function of
  ``(qpos, qvel)`` and, for tasks whose ``_get_obs`` reads quantities MuJoCo derives during
  ``mj_step`` (RK4-stage body positions: Ant's torso x, Humanoid's CoM x, Reacher's fingertip;
  InvertedDoublePendulum's constraint force), "stage" values read from a scratch ``mjData`` that
  replays the last physics substep of every env step from the rollout's own states (one extra
  ``mj_step`` per env step and sequence, in a Python loop: about ``1 / frame_skip`` more physics).

``obs_seq[:, 0]`` is the observation of ``sim_state``. It equals the env's for tasks without stage
values, and for every task right after ``reset``. Mid-episode, stage values of the *previous* step
cannot be recovered from the state (they belong to a substep the state does not record), so for Ant,
Humanoid, Reacher and InvertedDoublePendulum ``obs_seq[:, 0]`` uses the values of the state itself
(``mj_forward``) unless the caller passes the env's observation as ``obs``. The difference (up to
~2e-3 m in Ant's torso x) moves only the reward of the first step, by the same amount for every
sequence, so it does not change which sequence a planner prefers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from envs.spec import Capability, StateObservation, TaskSpec, load


def supported_tasks() -> list[str]:
    """Names of the registered tasks with ``Capability.SIMULATOR`` (simulator rollouts)."""
    from envs import TASKS

    return [n for n in TASKS if TASKS[n].simulator and TASKS[n].state_to_obs is not None]


@dataclass(frozen=True)
class SimulatorLayout:
    """A MuJoCo task's simulator: its ``MjModel`` and ``frame_skip`` (taken from one env built and
    closed), its :class:`~envs.spec.StateObservation` and where ``qpos``, ``qvel`` and ``act`` sit
    in the ``mjSTATE_FULLPHYSICS`` vector ``[S]`` (``S = phys_dim``) that ``info["sim_state"]``
    holds. Shared by :class:`SimulatorRollout` and iLQG's simulator derivatives."""

    model: Any
    frame_skip: int
    obs_fn: Callable[..., Any]
    stage_fn: Callable[..., Any] | None
    sig: int
    phys_dim: int
    qpos: slice
    qvel: slice
    act: slice
    stage_dim: int
    """``K``: how many stage values the observation reads (0 without ``stage_fn``)."""

    @classmethod
    def of(cls, task: TaskSpec) -> SimulatorLayout:
        import mujoco

        if not task.has(Capability.SIMULATOR):
            raise ValueError(
                f"task {task.name!r} has no simulator rollouts (Capability.SIMULATOR); "
                f"supported tasks: {', '.join(supported_tasks())}"
            )
        sim_obs = load(task.entry.state_to_obs)
        if not isinstance(sim_obs, StateObservation):
            raise TypeError(f"{task.entry.state_to_obs} is not a StateObservation")
        env = task.make_env()
        try:
            unwrapped: Any = env.unwrapped
            model, frame_skip = unwrapped.model, int(unwrapped.frame_skip)
        finally:
            env.close()
        sig = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
        t0 = int(mujoco.mj_stateSize(model, int(mujoco.mjtState.mjSTATE_TIME)))
        nq, nv, na = int(model.nq), int(model.nv), int(model.na)
        stage_dim = 0
        if sim_obs.stage is not None:
            data = mujoco.MjData(model)
            mujoco.mj_forward(model, data)
            stage_dim = len(np.asarray(sim_obs.stage(model, data)).reshape(-1))
        return cls(
            model=model,
            frame_skip=frame_skip,
            obs_fn=sim_obs.from_state,
            stage_fn=sim_obs.stage,
            sig=sig,
            phys_dim=int(mujoco.mj_stateSize(model, sig)),
            qpos=slice(t0, t0 + nq),
            qvel=slice(t0 + nq, t0 + nq + nv),
            act=slice(t0 + nq + nv, t0 + nq + nv + na),
            stage_dim=stage_dim,
        )


class SimulatorRollout:
    """Batched true rollouts of a MuJoCo task from a simulator state (see the module docstring).

    Args:
        task: a :class:`~envs.spec.TaskSpec` with ``Capability.SIMULATOR``.
        nthread: CPU threads. ``1`` (default: one benchmark trial gets one CPU) runs on the calling
            thread; ``k > 1`` uses a pool of ``k`` threads and ``k`` ``mjData``.

    Attributes:
        state_dim: ``S``, the length of a ``mjSTATE_FULLPHYSICS`` vector of this task (what
            ``info["sim_state"]`` holds; ``[S]`` for :meth:`__call__`, ``[N, S]`` for :meth:`step`).
        act_dim: ``A``, the number of actuators (``model.nu``, equal to the task's ``act_dim``).

    Buffers (initial states, controls, every physics substep's state, observations) are allocated
    on the first call and reused while ``(N, H)`` stay the same (:meth:`step` uses ``H = 1``); the
    returned tensors are always fresh ones. Not thread-safe: use one instance per thread.
    """

    def __init__(self, task: TaskSpec, *, nthread: int = 1) -> None:
        import mujoco
        from mujoco import rollout

        if nthread < 1:
            raise ValueError(f"nthread must be >= 1, got {nthread}")
        self.task = task
        self.nthread = int(nthread)
        layout = SimulatorLayout.of(task)
        self.model, self.frame_skip = layout.model, layout.frame_skip
        self._obs_fn, self._stage_fn, self._sig = layout.obs_fn, layout.stage_fn, layout.sig
        self.state_dim, self._qpos, self._qvel = layout.phys_dim, layout.qpos, layout.qvel
        m = self.model
        self._ctrl_spec = int(mujoco.mjtState.mjSTATE_CTRL)
        self.act_dim = int(m.nu)
        if self.act_dim != task.act_dim:
            raise ValueError(f"{task.name}: model has nu={m.nu}, task act_dim={task.act_dim}")

        self._pool = rollout.Rollout(nthread=0 if self.nthread == 1 else self.nthread)
        self._datas = [mujoco.MjData(m) for _ in range(self.nthread)]
        self._scratch = mujoco.MjData(m)
        self._stage_dim = layout.stage_dim
        self._shape: tuple[int, int] | None = None

    # --- buffers ----------------------------------------------------------------------------

    def _buffers(self, n: int, h: int) -> None:
        if self._shape == (n, h):
            return
        steps = h * self.frame_skip
        self._models = [self.model] * n
        self._init = np.empty((n, self.state_dim), np.float64)
        self._ctrl = np.empty((n, steps, self.act_dim), np.float64)
        self._states = np.empty((n, steps, self.state_dim), np.float64)
        self._obs = np.empty((n, h + 1, self.task.obs_dim), np.float64)
        self._stage = np.empty((n, h, self._stage_dim), np.float64)
        self._shape = (n, h)

    # --- observations -----------------------------------------------------------------------

    def _stage_values(self, state: np.ndarray, ctrl: np.ndarray | None) -> np.ndarray:
        """``[K]`` stage values after one ``mj_step`` from ``state`` with ``ctrl`` held, or of
        ``state`` itself (``mj_forward``) when ``ctrl`` is ``None``."""
        import mujoco

        assert self._stage_fn is not None
        d = self._scratch
        mujoco.mj_setState(self.model, d, state, self._sig)
        if ctrl is None:
            mujoco.mj_forward(self.model, d)
        else:
            d.ctrl[:] = ctrl
            mujoco.mj_step(self.model, d)
        return self._stage_fn(self.model, d)

    def observation(self, sim_state: np.ndarray) -> np.ndarray:
        """``[S] -> [O]`` float64: the observation of a state (see the module docstring)."""
        state = np.ascontiguousarray(sim_state, np.float64).reshape(-1)
        stage = None
        if self._stage_fn is not None:
            stage = np.asarray(self._stage_values(state, None), np.float64)
        return np.asarray(self._obs_fn(state[self._qpos], state[self._qvel], stage))

    def _replay_stages(self, n: int, h: int, act: np.ndarray) -> np.ndarray:
        """``[N, H, K]``: stage values of every env step, by replaying its last substep."""
        import mujoco

        assert self._stage_fn is not None
        fs, stage, states, init = self.frame_skip, self._stage, self._states, self._init
        m, d, sig, read = self.model, self._scratch, self._sig, self._stage_fn
        set_state, step, ctrl = mujoco.mj_setState, mujoco.mj_step, self._scratch.ctrl
        for t in range(h):
            pre = t * fs + fs - 2  # substep state before the last substep of env step t
            for i in range(n):
                set_state(m, d, states[i, pre] if pre >= 0 else init[i], sig)
                ctrl[:] = act[i, t]
                step(m, d)
                stage[i, t] = read(m, d)
        return stage

    def _roll(self, act: np.ndarray) -> np.ndarray:
        """Roll ``self._init`` ``[N, S]`` (one start state per row) forward under ``act``
        ``[N, H, A]`` float64 in one ``mujoco.rollout`` call; fills ``self._states`` and
        ``self._obs[:, 1:]`` and returns ``[N, H, S]``, the state after every env step (a view of
        ``self._states``). Shared by :meth:`__call__` and :meth:`step`."""
        n, h, _ = act.shape
        fs = self.frame_skip
        self._ctrl.reshape(n, h, fs, self.act_dim)[:] = act[:, :, None, :]
        self._pool.rollout(
            self._models,
            self._datas,
            self._init,
            self._ctrl,
            control_spec=self._ctrl_spec,
            skip_checks=True,
            nstep=h * fs,
            initial_warmstart=None,
            state=self._states,
            sensordata=None,
            chunk_size=None,
        )
        steps = self._states[:, fs - 1 :: fs]  # [N, H, S]: the state after every env step
        stage = None if self._stage_fn is None else self._replay_stages(n, h, act)
        self._obs[:, 1:] = self._obs_fn(steps[..., self._qpos], steps[..., self._qvel], stage)
        return steps

    @staticmethod
    def _out_dtype(actions: torch.Tensor) -> torch.dtype:
        """Returned observations take ``actions``' dtype (``float32`` for integer actions)."""
        return actions.dtype if actions.is_floating_point() else torch.float32

    # --- the call ---------------------------------------------------------------------------

    def __call__(
        self,
        sim_state: np.ndarray,
        actions: torch.Tensor,
        obs: np.ndarray | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Roll ``N`` action sequences out from one state.

        Args:
            sim_state: ``[S]`` float64, ``info["sim_state"]`` of the env (``mjSTATE_FULLPHYSICS``).
            actions: ``[N, H, A]`` env-unit actions (any float dtype, any device).
            obs: optional ``[O]`` current observation of the env; when given it becomes
                ``obs_seq[:, 0]`` (only matters for tasks with stage values, see module docstring).

        Returns:
            ``[N, H + 1, O]`` in ``actions``' dtype and device: ``[:, 0]`` the current observation,
            ``[:, t + 1]`` the observation after action ``t``.
        """
        if actions.ndim != 3 or actions.shape[-1] != self.act_dim:
            raise ValueError(f"actions must be [N, H, {self.act_dim}], got {tuple(actions.shape)}")
        state = np.asarray(sim_state, np.float64).reshape(-1)
        if state.size != self.state_dim:
            raise ValueError(
                f"sim_state must have {self.state_dim} entries (mjSTATE_FULLPHYSICS of "
                f"{self.task.name}), got {state.size}"
            )
        n, h, _ = actions.shape
        self._buffers(n, h)
        self._init[:] = state
        self._roll(actions.detach().to("cpu", torch.float64).numpy())
        if obs is None:
            self._obs[:, 0] = self.observation(state)
        else:
            self._obs[:, 0] = torch.as_tensor(obs).detach().to("cpu", torch.float64).numpy()
        dtype = self._out_dtype(actions)
        return torch.from_numpy(self._obs).to(device=actions.device, dtype=dtype, copy=True)

    def step(
        self, states: np.ndarray | torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One env step from each of ``N`` different states (closed-loop oracle rollouts).

        Row ``i`` is exactly ``env.step(actions[i])`` from ``states[i]``: ``frame_skip``
        ``mj_step``\\ s with the control held, all rows in one ``mujoco.rollout`` call (per-row
        initial states), stage values replayed as in :meth:`__call__`. Call it again on the returned
        states to roll a policy forward.

        Args:
            states: ``[N, S]`` ``mjSTATE_FULLPHYSICS`` vectors, one per row (``info["sim_state"]``,
                :func:`envs.wrappers.get_sim_state`, or a previous call's ``next_states``); any
                float dtype and device, used as float64 (store them in float64: float32 rounds
                ``qpos``).
            actions: ``[N, A]`` env-unit actions (any float dtype, any device).

        Returns:
            ``(next_states, next_obs)``: ``[N, S]`` float64 on CPU, and ``[N, O]`` in ``actions``'
            dtype and device, both fresh tensors (no buffer aliasing).
        """
        if actions.ndim != 2 or actions.shape[-1] != self.act_dim:
            raise ValueError(
                f"actions must be [N, {self.act_dim}] (one action per state), "
                f"got {tuple(actions.shape)}"
            )
        if isinstance(states, torch.Tensor):
            init = states.detach().to("cpu", torch.float64).numpy()
        else:
            init = np.asarray(states, np.float64)
        n = actions.shape[0]
        if init.shape != (n, self.state_dim):
            raise ValueError(
                f"states must be [N, S] = [{n}, {self.state_dim}] (one mjSTATE_FULLPHYSICS vector "
                f"of {self.task.name} per action row), got {tuple(init.shape)}"
            )
        self._buffers(n, 1)
        self._init[:] = init
        act = actions.detach().to("cpu", torch.float64).numpy()[:, None, :]  # [N, 1, A]
        next_states = torch.from_numpy(self._roll(act)[:, 0].copy())
        next_obs = torch.from_numpy(self._obs[:, 1]).to(
            device=actions.device, dtype=self._out_dtype(actions), copy=True
        )
        return next_states, next_obs

    def close(self) -> None:
        """Stop the thread pool (a later call raises)."""
        self._pool.close()

    def __enter__(self) -> SimulatorRollout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
