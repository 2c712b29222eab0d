"""Simulator rollouts (``envs.simulate.SimulatorRollout``) reproduce ``env.step``.

For every task with ``Capability.SIMULATOR``: take ``info["sim_state"]`` after a few random steps,
roll out ``N = 3`` action sequences of ``H = 5`` steps, one of them the actions the env then takes,
and compare observations, rewards (``reward_fn`` on consecutive predicted observations) and
terminations with the env's. Plus the shape/dtype contract, buffer reuse, threads and errors, and
``SimulatorRollout.step`` (one env step from many states) against ``env.step`` from each state.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from envs import TASKS, Capability, TaskSpec, make_task
from envs.simulate import SimulatorRollout, supported_tasks

SUPPORTED = supported_tasks()
#: Tasks whose observation reads "stage" values (see envs/simulate.py): mid-episode their
#: ``obs_seq[:, 0]`` is exact only when the env's observation is passed in.
STAGED = {"ant", "humanoid", "reacher", "inverted_double_pendulum"}
#: InvertedDoublePendulum's reward reads the tip from the last RK4 stage (see its module docstring).
REWARD_TOL = {"inverted_double_pendulum": (1e-4, 5e-4)}
N, H = 3, 5


@functools.cache
def spec_of(name: str) -> TaskSpec:
    return make_task(name)


@functools.cache
def sim_of(name: str) -> SimulatorRollout:
    return SimulatorRollout(spec_of(name))


def _env_segment(name: str, warmup: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``warmup`` random steps, then ``H`` more: the state and observation before the ``H`` steps,
    their actions ``[H, A]``, observations ``[H + 1, O]``, rewards and terminations ``[H]``."""
    env = TASKS[name].make_env()
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    for _ in range(warmup):
        obs, _, _, _, info = env.step(env.action_space.sample())
    state = info["sim_state"].copy()
    acts, observations, rewards, terms = [], [obs.copy()], [], []
    for _ in range(H):
        act = env.action_space.sample()
        obs, reward, terminated, _, _ = env.step(act)
        acts.append(np.asarray(act, np.float64))
        observations.append(obs.copy())
        rewards.append(reward)
        terms.append(terminated)
    env.close()
    return {
        "state": state,
        "act": np.stack(acts),
        "obs": np.stack(observations),
        "reward": np.asarray(rewards, np.float64),
        "terminated": np.asarray(terms),
    }


def _batch(act: np.ndarray, high: np.ndarray, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """``[N, H, A]``: a random sequence, the env's ``act``, another random sequence."""
    rng = np.random.default_rng(seed)
    other = [rng.uniform(-high, high, size=act.shape) for _ in range(2)]
    return torch.as_tensor(np.stack([other[0], act, other[1]]), dtype=dtype)


@pytest.mark.parametrize("name", SUPPORTED)
def test_rollout_matches_env(name: str) -> None:
    spec, sim = spec_of(name), sim_of(name)
    seg = _env_segment(name, warmup=4)
    actions = _batch(seg["act"], spec.act_high, seed=1, dtype=torch.float64)

    pred = sim(seg["state"], actions, obs=seg["obs"][0])
    assert pred.shape == (N, H + 1, spec.obs_dim)
    assert pred.dtype == torch.float64 and pred.device == actions.device
    np.testing.assert_allclose(pred[1].numpy(), seg["obs"], rtol=1e-6, atol=1e-6, err_msg=name)
    assert not np.allclose(pred[0, 1:].numpy(), seg["obs"][1:])  # other rows: other futures
    np.testing.assert_array_equal(
        pred[:, 0].numpy(), np.broadcast_to(seg["obs"][0], (N, spec.obs_dim))
    )

    # rows are independent: each equals a rollout of that row alone
    for i in (0, 2):
        alone = sim(seg["state"], actions[i : i + 1], obs=seg["obs"][0])
        np.testing.assert_allclose(alone[0].numpy(), pred[i].numpy(), rtol=1e-9, atol=1e-9)

    # reward_fn / termination_fn over consecutive predicted observations equal the env's
    obs, nxt = pred[1, :-1], pred[1, 1:]
    rtol, atol = REWARD_TOL.get(name, (1e-6, 1e-6))
    assert spec.reward_fn is not None and spec.termination_fn is not None
    rew = spec.reward_fn(obs, actions[1], nxt).numpy()
    np.testing.assert_allclose(rew, seg["reward"], rtol=rtol, atol=atol, err_msg=name)
    done = spec.termination_fn(obs, actions[1], nxt).numpy()
    np.testing.assert_array_equal(done, seg["terminated"], err_msg=name)

    # without the env's observation, obs_seq[:, 0] is the state's own observation
    pred0 = sim(seg["state"], actions)
    np.testing.assert_allclose(pred0[:, 1:].numpy(), pred[:, 1:].numpy(), rtol=0, atol=0)
    tol = 1e-2 if name in STAGED else 1e-12  # Ant's torso x: up to ~2e-3 (envs/simulate.py)
    np.testing.assert_allclose(pred0[1, 0].numpy(), seg["obs"][0], rtol=0, atol=tol)


@pytest.mark.parametrize("name", SUPPORTED)
def test_rollout_from_reset_float32(name: str) -> None:
    """From a reset state ``obs_seq[:, 0]`` is exact without ``obs``; float32 in, float32 out."""
    spec, sim = spec_of(name), sim_of(name)
    seg = _env_segment(name, warmup=0, seed=3)
    actions = _batch(seg["act"], spec.act_high, seed=2, dtype=torch.float32)
    pred = sim(seg["state"], actions)
    assert pred.shape == (N, H + 1, spec.obs_dim) and pred.dtype == torch.float32
    np.testing.assert_allclose(pred[1].numpy(), seg["obs"], rtol=1e-6, atol=1e-6, err_msg=name)


def test_buffers_are_reused_and_results_are_not_aliased() -> None:
    sim = sim_of("halfcheetah")
    seg = _env_segment("halfcheetah", warmup=2)
    a1 = _batch(seg["act"], spec_of("halfcheetah").act_high, seed=5, dtype=torch.float32)
    first = sim(seg["state"], a1)
    kept = first.clone()
    states_buffer = sim._states
    second = sim(seg["state"], -a1)
    assert sim._states is states_buffer  # same (N, H): no new allocation
    assert torch.equal(first, kept) and not torch.equal(first, second)
    sim(seg["state"], a1[:, :2])  # a new horizon reallocates, and still works
    assert sim._states is not states_buffer


def test_threads_give_the_same_result() -> None:
    spec = spec_of("hopper")
    seg = _env_segment("hopper", warmup=3)
    rng = np.random.default_rng(0)
    actions = torch.as_tensor(rng.uniform(-1, 1, size=(8, H, spec.act_dim)), dtype=torch.float64)
    with SimulatorRollout(spec, nthread=2) as threaded:
        out2 = threaded(seg["state"], actions)
    out1 = sim_of("hopper")(seg["state"], actions)
    np.testing.assert_allclose(out2.numpy(), out1.numpy(), rtol=1e-12, atol=1e-12)


def test_capability_needs_state_to_obs() -> None:
    assert set(SUPPORTED) == {n for n in TASKS if spec_of(n).has(Capability.SIMULATOR)}
    assert {"halfcheetah", "hopper", "walker2d", "ant", "inverted_pendulum"} <= set(SUPPORTED)
    entry = dataclasses.replace(TASKS["hopper"], state_to_obs=None)
    assert not entry.resolve().has(Capability.SIMULATOR)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"supported tasks: .*halfcheetah"):
        SimulatorRollout(spec_of("pendulum"))
    sim = sim_of("halfcheetah")
    state = _env_segment("halfcheetah", warmup=0)["state"]
    with pytest.raises(ValueError, match="actions must be"):
        sim(state, torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="sim_state must have"):
        sim(state[:-1], torch.zeros(2, 3, 6))


# --- SimulatorRollout.step: one env step from many states ----------------------------------------

#: Tasks for ``step``: no stage values (InvertedPendulum), contacts (Hopper), stage values
#: (InvertedDoublePendulum's constraint force; Ant's torso x and Reacher's fingertip, which a wrong
#: stage replay moves by ~1e-3, so they catch it).
STEP_TASKS = ["inverted_pendulum", "hopper", "inverted_double_pendulum", "ant", "reacher"]
K = 8


def _env_states(name: str, k: int = K, seed: int = 0) -> np.ndarray:
    """``[k, S]``: ``info["sim_state"]`` along random-action episodes (resets included)."""
    env = TASKS[name].make_env()
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    states = [info["sim_state"].copy()]
    while len(states) < k:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        states.append(info["sim_state"].copy())
        if terminated or truncated:
            _, info = env.reset(seed=seed + len(states))
            states.append(info["sim_state"].copy())
    env.close()
    return np.stack(states[:k])


def _env_steps(name: str, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
    """``env.step(actions[i])`` from each restored ``states[i]``: next states ``[k, S]``, next
    observations ``[k, O]``."""
    from envs.wrappers import restore_sim_state

    env = TASKS[name].make_env()
    env.reset(seed=0)
    unwrapped = env.unwrapped
    next_states, next_obs = [], []
    for state, action in zip(states, actions, strict=True):
        restore_sim_state(unwrapped.model, unwrapped.data, state)
        obs, _, _, _, info = env.step(action)
        next_states.append(info["sim_state"].copy())
        next_obs.append(obs.copy())
    env.close()
    return np.stack(next_states), np.stack(next_obs)


def _random_actions(name: str, k: int, seed: int) -> np.ndarray:
    spec = spec_of(name)
    return np.random.default_rng(seed).uniform(spec.act_low, spec.act_high, (k, spec.act_dim))


@pytest.mark.parametrize("name", STEP_TASKS)
def test_step_matches_env_from_many_states(name: str) -> None:
    spec, sim = spec_of(name), sim_of(name)
    states = _env_states(name)
    actions = _random_actions(name, K, seed=1)
    want_states, want_obs = _env_steps(name, states, actions)
    assert len({s.tobytes() for s in states}) == K  # K different start states

    next_states, next_obs = sim.step(states, torch.as_tensor(actions))
    assert next_states.shape == (K, sim.state_dim) and next_states.dtype == torch.float64
    assert next_obs.shape == (K, spec.obs_dim) and next_obs.dtype == torch.float64
    # the constraint solver's warm start is not in the state: contacts may differ in the last bits
    np.testing.assert_allclose(next_states.numpy(), want_states, rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(next_obs.numpy(), want_obs, rtol=1e-6, atol=1e-6, err_msg=name)
    # the inputs' own types: float32 tensors in, float32 observations out, states stay float64
    states32, obs32 = sim.step(
        torch.as_tensor(states), torch.as_tensor(actions, dtype=torch.float32)
    )
    assert obs32.dtype == torch.float32 and states32.dtype == torch.float64
    np.testing.assert_allclose(obs32.numpy(), want_obs, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("name", STEP_TASKS)
def test_step_chained_equals_open_loop_rollout(name: str) -> None:
    """Stepping the returned states again is the open-loop ``__call__`` from each start state."""
    sim = sim_of(name)
    states = _env_states(name, k=3, seed=2)
    actions = torch.as_tensor(np.stack([_random_actions(name, 3, seed=s) for s in (3, 4)], 1))
    mid_states, mid_obs = sim.step(states, actions[:, 0])
    _, last_obs = sim.step(mid_states, actions[:, 1])
    for i in range(3):
        seq = sim(states[i], actions[i : i + 1])[0]  # [3, O]
        np.testing.assert_allclose(mid_obs[i].numpy(), seq[1].numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(last_obs[i].numpy(), seq[2].numpy(), rtol=0, atol=1e-12)


def test_step_results_are_not_aliased_and_observation_works() -> None:
    name = "hopper"
    sim = sim_of(name)
    states = _env_states(name, k=4, seed=5)
    actions = torch.as_tensor(_random_actions(name, 4, seed=6))
    next_states, next_obs = sim.step(states, actions)
    kept = next_states.clone(), next_obs.clone()
    sim.step(states, -actions)  # same N: the buffers are reused
    assert torch.equal(next_states, kept[0]) and torch.equal(next_obs, kept[1])
    # observation(sim_state) is the observation of each returned state (Hopper: no stage values)
    for state, obs in zip(next_states.numpy(), next_obs.numpy(), strict=True):
        np.testing.assert_allclose(sim.observation(state), obs, rtol=0, atol=1e-12)


def test_step_errors() -> None:
    sim = sim_of("hopper")
    states = _env_states("hopper", k=2)
    a = sim.act_dim
    with pytest.raises(ValueError, match=r"actions must be \[N, 3\] \(one action per state\)"):
        sim.step(states, torch.zeros(2, 1, a))
    with pytest.raises(ValueError, match=r"actions must be \[N, 3\]"):
        sim.step(states, torch.zeros(2, a + 1))
    with pytest.raises(ValueError, match=rf"states must be \[N, S\] = \[2, {sim.state_dim}\]"):
        sim.step(states[:, :-1], torch.zeros(2, a))
    with pytest.raises(ValueError, match=r"states must be \[N, S\] = \[3, "):
        sim.step(states, torch.zeros(3, a))  # one state per action row
    with pytest.raises(ValueError, match=r"states must be \[N, S\]"):
        sim.step(states[0], torch.zeros(1, a))  # a single [S] state needs a leading axis
