"""Contract of every registered task: its torch functions agree with ``env.step``.

For each task: random (seeded) rollouts across episode ends; ``reward_fn`` / ``termination_fn`` on
the collected ``(obs, act, next_obs)`` equal the env's reward / ``terminated`` (float64 and float32
inputs), ``dynamics`` reproduces ``next_obs``, ``linearize`` matches finite differences of
``env.step``, resets are deterministic, observation sizes are as documented, MuJoCo tasks expose a
restorable ``info["sim_state"]``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import TASKS, Capability, TaskSpec, make_task
from envs.dmc import EXACT_REWARDS

NAMES = list(TASKS)
#: DMC tasks with an exact reward function (action repeat 1: ``envs/dmc.py``).
DMC_EXACT = [f"dmc:{d}-{t}@1" for d, t in EXACT_REWARDS]
MUJOCO = [n for n in NAMES if "mujoco" in TASKS[n].tags]
CLASSIC = {"pendulum", "cartpole_swingup", "cartpole", "cartpole_continuous", "acrobot"}

#: ``(obs_dim, act_dim)`` as documented in ``envs/catalog.py``.
DIMS = {
    "pendulum": (3, 1),
    "cartpole_swingup": (4, 1),
    "cartpole": (4, 2),
    "cartpole_continuous": (4, 1),
    "acrobot": (6, 3),
    "inverted_pendulum": (4, 1),
    "inverted_double_pendulum": (9, 1),
    "reacher": (10, 2),
    "halfcheetah": (18, 6),
    "hopper": (12, 3),
    "walker2d": (18, 6),
    "ant": (28, 8),
    "humanoid": (46, 17),
    # DMC (envs/dmc.py docstring: the suite's observation dict flattened)
    "dmc:cartpole-balance@1": (5, 1),
    "dmc:cartpole-swingup@1": (5, 1),
    "dmc:cartpole-balance_sparse@1": (5, 1),
    "dmc:cartpole-swingup_sparse@1": (5, 1),
    "dmc:pendulum-swingup@1": (3, 1),
    "dmc:reacher-easy@1": (6, 2),
    "dmc:reacher-hard@1": (6, 2),
}
#: Tasks whose random(-ish) rollouts must hit at least one termination.
TERMINATING = {
    "cartpole",
    "cartpole_continuous",
    "acrobot",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "hopper",
    "walker2d",
    "ant",
    "humanoid",
}
#: ``(rtol, atol)`` of reward checks on float64 inputs. InvertedDoublePendulum's reward reads the
#: tip from MuJoCo's last RK4 stage, not the final qpos (see its module docstring).
REWARD_TOL = {"inverted_double_pendulum": (1e-4, 5e-4)}
DEFAULT_REWARD_TOL = (1e-4, 1e-4)
#: Past termination InvertedDoublePendulum's poles swing freely and the RK4-stage gap grows (O(h^3)
#: times the jerk): up to ~0.02 on rewards of -1..-10, in states real episodes never reach.
REWARD_TOL_FAR = {"inverted_double_pendulum": (1e-2, 5e-2)}
ROLLOUT_STEPS = 400


@functools.cache
def spec_of(name: str) -> TaskSpec:
    return make_task(name)


@dataclass
class Rollout:
    obs: np.ndarray
    """``[N, O]``"""
    act: np.ndarray
    """``[N, A]`` env-unit actions, or ``[N, n]`` one-hot for discrete tasks."""
    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray


def _policy(name: str, env: gym.Env, rng: np.random.Generator) -> Callable[[np.ndarray], Any]:
    if name == "acrobot":  # pump energy into the swing so the goal height is actually reached
        return lambda o: (2 if o[5] > 0 else 0) if rng.random() < 0.8 else env.action_space.sample()
    return lambda o: env.action_space.sample()


@functools.cache
def rollout(
    name: str, steps: int = ROLLOUT_STEPS, seed: int = 0, through_termination: bool = False
) -> Rollout:
    """Seeded rollout; resets on termination unless ``through_termination`` (then only on the time
    limit), which visits states far from the start (fallen walkers, swinging poles)."""
    env = TASKS[name].make_env()
    env.action_space.seed(seed)
    policy = _policy(name, env, np.random.default_rng(seed))
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "next_obs", "reward", "term")}
    for _ in range(steps):
        action = policy(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        if discrete:
            act = np.eye(int(env.action_space.n))[int(action)]
        else:
            act = np.asarray(action, np.float64).reshape(-1)
        rows["obs"].append(np.asarray(obs, np.float64))
        rows["act"].append(act)
        rows["next_obs"].append(np.asarray(next_obs, np.float64))
        rows["reward"].append(float(reward))
        rows["term"].append(bool(terminated))
        obs = next_obs
        if truncated or (terminated and not through_termination):
            obs, _ = env.reset()
    env.close()
    return Rollout(
        obs=np.stack(rows["obs"]),
        act=np.stack(rows["act"]),
        next_obs=np.stack(rows["next_obs"]),
        reward=np.asarray(rows["reward"]),
        terminated=np.asarray(rows["term"]),
    )


def _tensors(r: Rollout, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(r.obs, dtype=dtype),
        torch.as_tensor(r.act, dtype=dtype),
        torch.as_tensor(r.next_obs, dtype=dtype),
    )


@pytest.mark.parametrize("name", NAMES + DMC_EXACT)
def test_reward_and_termination_match_env(name: str) -> None:
    spec = spec_of(name)
    assert spec.reward_fn is not None and spec.termination_fn is not None
    r = rollout(name)
    if name in TERMINATING:
        assert r.terminated.any(), f"{name}: no termination seen in {len(r.terminated)} steps"
    rtol, atol = REWARD_TOL.get(name, DEFAULT_REWARD_TOL)

    obs, act, next_obs = _tensors(r, torch.float64)
    done = spec.termination_fn(obs, act, next_obs)
    assert done.dtype == torch.bool and done.shape == (len(r.reward),)
    np.testing.assert_array_equal(done.numpy(), r.terminated, err_msg=f"{name}: termination")
    rew = spec.reward_fn(obs, act, next_obs)
    assert rew.dtype == torch.float64 and rew.shape == (len(r.reward),)
    np.testing.assert_allclose(rew.numpy(), r.reward, rtol=rtol, atol=atol, err_msg=name)

    # float32 inputs: same dtype out, same decisions, rewards to float32 precision
    obs, act, next_obs = _tensors(r, torch.float32)
    done32 = spec.termination_fn(obs, act, next_obs)
    np.testing.assert_array_equal(done32.numpy(), r.terminated, err_msg=f"{name}: float32")
    rew32 = spec.reward_fn(obs, act, next_obs)
    assert rew32.dtype == torch.float32
    scale = max(1.0, float(np.abs(r.next_obs[:, 0]).max()))  # positions enter (x' - x) / dt
    np.testing.assert_allclose(rew32.numpy(), r.reward, rtol=1e-3, atol=1e-3 * scale)

    # batched over extra leading dims
    obs, act, next_obs = _tensors(r, torch.float64)
    rew2 = spec.reward_fn(*(t.view(2, -1, t.shape[-1]) for t in (obs, act, next_obs)))
    assert rew2.shape == (2, len(r.reward) // 2)
    np.testing.assert_allclose(rew2.reshape(-1).numpy(), rew.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MUJOCO)
def test_reward_and_termination_match_env_far_from_start(name: str) -> None:
    """1000 steps that keep stepping after termination (MuJoCo envs allow it and keep reporting
    reward and ``terminated`` from the current state)."""
    spec = spec_of(name)
    r = rollout(name, steps=1000, seed=1, through_termination=True)
    keep = np.ones(len(r.reward), bool)
    if name == "inverted_double_pendulum":  # velocity penalty reads unclipped qvel (see module)
        keep = (np.abs(r.next_obs[:, 5:8]) < 10.0).all(-1)
        assert keep.sum() >= 200
    obs, act, next_obs = (t[keep] for t in _tensors(r, torch.float64))
    done = spec.termination_fn(obs, act, next_obs)
    np.testing.assert_array_equal(done.numpy(), r.terminated[keep], err_msg=name)
    rtol, atol = REWARD_TOL_FAR.get(name, DEFAULT_REWARD_TOL)
    rew = spec.reward_fn(obs, act, next_obs).numpy()
    np.testing.assert_allclose(rew, r.reward[keep], rtol=rtol, atol=atol, err_msg=name)


DYNAMICS_ATOL = {"cartpole_swingup": 1e-12, "cartpole_continuous": 1e-12}


@pytest.mark.parametrize("name", [n for n in NAMES if TASKS[n].dynamics])
def test_dynamics_match_env(name: str) -> None:
    spec = spec_of(name)
    assert spec.dynamics is not None
    r = rollout(name)
    obs, act, _ = _tensors(r, torch.float64)
    pred = spec.dynamics(obs, act)
    assert pred.shape == obs.shape and pred.dtype == torch.float64
    atol = DYNAMICS_ATOL.get(name, 1e-4)  # float32 observations elsewhere
    np.testing.assert_allclose(pred.numpy(), r.next_obs, rtol=1e-4, atol=atol, err_msg=name)
    pred32 = spec.dynamics(*_tensors(r, torch.float32)[:2])
    assert pred32.dtype == torch.float32
    np.testing.assert_allclose(pred32.numpy(), r.next_obs, rtol=1e-3, atol=1e-3)


# --- linearization: (A, B) against central differences of env.step from set states -----------


@dataclass(frozen=True)
class StateAccess:
    """Put an env into the state an observation describes and read its post-step obs in float64."""

    set: Callable[[Any, np.ndarray], None]
    read: Callable[[Any], np.ndarray]
    directions: Callable[[np.ndarray], np.ndarray] = lambda obs: np.eye(len(obs))
    """``[K, O]`` observation-space directions that a state perturbation can realise."""


def _pendulum_set(env: Any, obs: np.ndarray) -> None:
    env.state = np.array([math.atan2(obs[1], obs[0]), obs[2]])


def _pendulum_read(env: Any) -> np.ndarray:
    th, thdot = env.state
    return np.array([math.cos(th), math.sin(th), thdot])


def _ip_set(env: Any, obs: np.ndarray) -> None:
    env.set_state(obs[:2], obs[2:])


STATE_ACCESS = {
    "pendulum": StateAccess(
        _pendulum_set,
        _pendulum_read,
        # tangent to the circle (d/dth) and d/dthdot; radial obs changes are not states
        lambda obs: np.array([[-obs[1], obs[0], 0.0], [0.0, 0.0, 1.0]]),
    ),
    "cartpole_swingup": StateAccess(
        lambda env, obs: setattr(env, "state", np.array(obs, np.float64)),
        lambda env: np.array(env.state, np.float64),
    ),
    "cartpole_continuous": StateAccess(
        lambda env, obs: setattr(env, "state", np.array(obs, np.float64)),
        lambda env: np.array(env.state, np.float64),
    ),
    "inverted_pendulum": StateAccess(_ip_set, lambda env: env._get_obs().astype(np.float64)),
}


def _fd_step(env: Any, access: StateAccess, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
    access.set(env, obs)
    env.step(act)
    return access.read(env)


@pytest.mark.parametrize("name", [n for n in NAMES if TASKS[n].equilibrium is not None])
def test_linearize_matches_finite_differences(name: str) -> None:
    spec = spec_of(name)
    assert spec.linearize is not None and spec.equilibrium is not None
    access = STATE_ACCESS[name]
    env = TASKS[name].make_env().unwrapped
    env.reset(seed=0)
    r = rollout(name)
    x_eq, u_eq = spec.equilibrium
    assert x_eq.shape == (spec.obs_dim,) and u_eq.shape == (spec.act_dim,)
    points = [(x_eq, u_eq)] + [(r.obs[i], 0.5 * r.act[i]) for i in (0, 3, 7)]
    eps = 1e-6
    for x, u in points:
        a_mat, b_mat = spec.linearize(x, u)
        assert a_mat.shape == (spec.obs_dim, spec.obs_dim)
        assert b_mat.shape == (spec.obs_dim, spec.act_dim)
        for v in access.directions(x):
            fd = _fd_step(env, access, x + eps * v, u) - _fd_step(env, access, x - eps * v, u)
            np.testing.assert_allclose(a_mat @ v, fd / (2 * eps), rtol=1e-4, atol=1e-4)
        for j in range(spec.act_dim):
            du = eps * np.eye(spec.act_dim)[j]
            fd = _fd_step(env, access, x, u + du) - _fd_step(env, access, x, u - du)
            np.testing.assert_allclose(b_mat[:, j], fd / (2 * eps), rtol=1e-4, atol=1e-4)
    # the equilibrium is a fixed point of the env
    np.testing.assert_allclose(_fd_step(env, access, x_eq, u_eq), x_eq, atol=1e-9)
    env.close()


# --- resets, spaces, capabilities, simulator state ---------------------------------------------


@pytest.mark.parametrize("name", NAMES + DMC_EXACT)
def test_reset_is_deterministic_and_dims_documented(name: str) -> None:
    obs_dim, act_dim = DIMS[name]
    spec = spec_of(name)
    assert (spec.obs_dim, spec.act_dim) == (obs_dim, act_dim)
    env_a, env_b = TASKS[name].make_env(), TASKS[name].make_env()
    o1, _ = env_a.reset(seed=123)
    o2, _ = env_a.reset(seed=123)
    o3, _ = env_b.reset(seed=123)
    o4, _ = env_b.reset(seed=124)
    assert np.asarray(o1).shape == env_a.observation_space.shape == (obs_dim,)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(o1, o3)
    assert not np.array_equal(o1, o4)
    env_a.close()
    env_b.close()


@pytest.mark.parametrize("name", NAMES)
def test_make_task_capabilities(name: str) -> None:
    spec = make_task(name)
    entry = TASKS[name]
    discrete = "discrete" in entry.tags
    assert spec.name == name and spec.max_episode_steps == entry.max_episode_steps
    assert spec.has(Capability.REWARD_FN) and spec.has(Capability.TERMINATION_FN)
    assert spec.discrete == discrete
    assert spec.has(Capability.DISCRETE_ACTIONS) == discrete
    assert spec.has(Capability.CONTINUOUS_ACTIONS) == (not discrete)
    assert spec.has(Capability.SIMULATOR) == ("mujoco" in entry.tags)
    assert spec.has(Capability.DYNAMICS) == (name in CLASSIC)
    assert spec.has(Capability.LINEARIZATION) == (
        name in {"pendulum", "cartpole_swingup", "cartpole_continuous", "inverted_pendulum"}
    )
    assert (spec.saturating_cost is not None) == (name in {"pendulum", "cartpole_swingup"})
    assert spec.act_low.shape == spec.act_high.shape == (spec.act_dim,)
    assert np.all(spec.act_low < spec.act_high)
    env = spec.make_env()
    assert isinstance(env, gym.wrappers.TimeLimit)
    assert env._max_episode_steps == entry.max_episode_steps
    env.close()


@pytest.mark.parametrize("name", [n for n in NAMES if TASKS[n].saturating_cost])
def test_saturating_cost_fits_its_task(name: str) -> None:
    """``TaskSpec.saturating_cost`` (PILCO's cost) is written in the task's state: the state map
    reads real observations, every index and shape fits ``a = [state, sin, cos of the angles]``,
    ``Q`` is PSD and the cost's distance is zero at its own target state (target's sin/cos agree
    with its angles)."""
    sc = spec_of(name).saturating_cost
    assert sc is not None
    obs = rollout(name).obs
    states = obs if sc.obs_to_state is None else sc.obs_to_state(obs)
    s_dim = len(sc.init_cov)
    assert states.shape == (len(obs), s_dim) and np.isfinite(states).all()
    a_dim = s_dim + 2 * len(sc.angle_dims)
    q = np.asarray(sc.weight, np.float64)
    assert len(sc.target) == a_dim and q.shape == (a_dim, a_dim)
    assert np.allclose(q, q.T) and np.linalg.eigvalsh(q).min() > -1e-12 and sc.width > 0
    assert all(0 <= i < a_dim for i in (*sc.dyn_inputs, *sc.policy_inputs))
    assert all(0 <= i < s_dim for i in (*sc.angle_dims, *sc.wrap_dims))
    assert len(sc.policy_lengthscales) == len(sc.policy_inputs) and sc.horizon >= 1
    assert all(len(m) == s_dim for m in (sc.init_mean, *sc.start_means))
    x = np.asarray(sc.target[:s_dim], np.float64)
    trig = [f(x[i]) for i in sc.angle_dims for f in (math.sin, math.cos)]  # gTrig's order
    diff = np.concatenate([x, trig]) - np.asarray(sc.target, np.float64)
    assert abs(diff @ q @ diff) < 1e-12


@pytest.mark.parametrize("name", MUJOCO)
def test_sim_state_restores_the_env(name: str) -> None:
    from envs.wrappers import restore_sim_state

    env, twin = TASKS[name].make_env(), TASKS[name].make_env()
    env.action_space.seed(1)
    _, info = env.reset(seed=1)
    twin.reset(seed=99)
    assert isinstance(info["sim_state"], np.ndarray) and info["sim_state"].dtype == np.float64
    for _ in range(3):
        _, _, _, _, info = env.step(env.action_space.sample())
    state = info["sim_state"].copy()
    u = twin.unwrapped
    restore_sim_state(u.model, u.data, state)
    action = env.action_space.sample()
    o1, _, t1, _, i1 = env.step(action)
    o2, _, t2, _, i2 = twin.step(action)
    assert t1 == t2
    np.testing.assert_allclose(i2["sim_state"], i1["sim_state"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(o2, o1, rtol=1e-6, atol=1e-6)
    env.close()
    twin.close()


@pytest.mark.parametrize("name", ["ant", "humanoid"])
def test_mbpo_observation_with_prepended_x(name: str) -> None:
    """``obs[1:]`` is MBPO's truncated observation ``[qpos[2:], qvel]``; ``obs[0]`` the x the
    forward reward reads (equal to the root's ``qpos[0]`` right after reset for the Ant)."""
    env = TASKS[name].make_env()
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    for step in range(3):
        np.testing.assert_array_equal(obs[1:], np.concatenate([u.data.qpos[2:], u.data.qvel]))
        if name == "ant" and step == 0:
            assert obs[0] == u.data.qpos[0]
        obs, *_ = env.step(env.action_space.sample())
    env.close()


# --- DMC: exact rewards near the goal, where random actions never go ---------------------------


def _near_goal(name: str, physics: Any, rng: np.random.Generator) -> None:
    """Put a DMC task's physics close to its goal (pole up, finger on the target)."""
    if name.startswith("dmc:cartpole"):
        physics.named.data.qpos["slider"] = rng.uniform(-0.3, 0.3)
        physics.named.data.qpos["hinge_1"] = rng.uniform(-0.15, 0.15)
    elif name.startswith("dmc:pendulum"):
        physics.named.data.qpos["hinge"] = rng.uniform(-0.2, 0.2)
        physics.named.data.qvel["hinge"] = rng.uniform(-0.5, 0.5)
    else:  # reacher: the finger next to the target
        physics.named.data.qpos[:] = rng.uniform(-np.pi, np.pi, 2)
        physics.forward()
        # geom_pos is in the target's body frame: shift by where that frame puts it now
        frame = (
            physics.named.data.geom_xpos["target", :2] - physics.named.model.geom_pos["target", :2]
        )
        finger = physics.named.data.geom_xpos["finger", :2]
        physics.named.model.geom_pos["target", :2] = finger + rng.uniform(-0.01, 0.01, 2) - frame
    physics.forward()


@pytest.mark.parametrize("name", DMC_EXACT)
def test_dmc_reward_matches_env_near_the_goal(name: str) -> None:
    """The sparse rewards (swing-ups, reacher) are zero almost everywhere random actions go:
    start 100 one-step transitions near the goal so that both branches are compared."""
    spec = spec_of(name)
    assert spec.reward_fn is not None
    env = spec.make_env()
    dm = env.unwrapped
    rng = np.random.default_rng(0)
    rows, rewards = [], []
    for i in range(100):
        env.reset(seed=i)
        _near_goal(name, dm.physics, rng)
        obs = dm._flat(dm._env.task.get_observation(dm.physics))
        act = rng.uniform(-1, 1, spec.act_dim)
        next_obs, reward, *_ = env.step(act)
        rows.append((obs, act, next_obs))
        rewards.append(reward)
    obs, act, next_obs = (torch.as_tensor(np.stack(x)) for x in zip(*rows, strict=True))
    got = spec.reward_fn(obs, act, next_obs).numpy()
    np.testing.assert_allclose(got, rewards, rtol=1e-9, atol=1e-9, err_msg=name)
    assert (np.asarray(rewards) > 0.5).sum() >= 10, f"{name}: the goal was not reached"
    env.close()
