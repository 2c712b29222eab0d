"""Tasks beyond the hand-written ones: ``gym:<id>`` (any gymnasium env) and ``dmc:<domain>-<task>``
(the DeepMind Control Suite): names, spaces, capabilities, the DMC protocol, the learned
termination predictor, and short trials of the plugins that learn what such a task lacks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms.api import ConfigError
from algorithms.models.termination import LearnedTermination, TerminationConfig
from benchmark.driver import TrialSpec, resolve, run_trial
from envs import TASKS, Capability, UnknownNameError, make_task
from envs.dmc import DMCEnv

# --- names and capabilities ------------------------------------------------------------------


def test_gym_id_is_a_task_with_no_functions():
    spec = make_task("gym:Swimmer-v5")
    assert (spec.obs_dim, spec.act_dim, spec.discrete) == (8, 2, False)
    assert spec.max_episode_steps == 1000
    assert spec.capabilities == {Capability.CONTINUOUS_ACTIONS}
    assert spec.reward_fn is None and spec.termination_fn is None
    assert "gym:Swimmer-v5" in TASKS and "gym:Nope-v0" not in TASKS
    discrete = make_task("gym:CartPole-v1")
    assert discrete.discrete and discrete.act_dim == 2 and discrete.max_episode_steps == 500


def test_dmc_task_follows_tdmpc2s_protocol():
    spec = make_task("dmc:cartpole-swingup")
    assert (spec.obs_dim, spec.act_dim, spec.max_episode_steps) == (5, 1, 500)
    # action repeat 2: the summed reward is no function of (obs, act, next_obs); termination is
    assert spec.capabilities == {Capability.CONTINUOUS_ACTIONS, Capability.TERMINATION_FN}
    exact = make_task("dmc:cartpole-swingup@1")
    assert exact.has(Capability.REWARD_FN) and exact.max_episode_steps == 1000
    assert make_task("dmc:cheetah-run@4").max_episode_steps == 250
    assert make_task("dmc:cheetah-run").reward_fn is None  # no exact function at any repeat


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("gym:Swimer-v5", ["unknown gymnasium id", "Did you mean"]),
        ("gym:", ["gym:<id>"]),
        ("gym:no_such_module:Foo-v0", ["cannot import module 'no_such_module'"]),
        ("dmc:cartpole-swingupp", ["Did you mean 'dmc:cartpole-swingup'"]),
        ("dmc:cartpole", ["dmc:<domain>-<task>"]),
        ("dmc:cartpole-swingup@0", ["positive integer"]),
        ("dmc:lqr-lqr_2_1", ["not offered: unbounded actions"]),
        ("hoper", ["Did you mean 'hopper'", "gym:<gymnasium id>", "dmc:<domain>-<task>"]),
    ],
)
def test_bad_task_names_say_what_to_write(name, words):
    with pytest.raises(UnknownNameError) as err:
        TASKS[name]
    for w in words:
        assert w in str(err.value), str(err.value)


class _DictObsEnv(gym.Env):
    """A Dict observation (flattened by the gym namespace) and a Box action."""

    def __init__(self, action_space: gym.Space | None = None) -> None:
        self.observation_space = gym.spaces.Dict(
            {"a": gym.spaces.Box(-1, 1, (2,)), "b": gym.spaces.Box(-1, 1, (3, 1))}
        )
        self.action_space = action_space or gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture(scope="module")
def toy_ids():
    gym.register("MbrlBenchDict-v0", entry_point=_DictObsEnv, max_episode_steps=20)
    gym.register(
        "MbrlBenchMulti-v0",
        entry_point=lambda: _DictObsEnv(gym.spaces.MultiDiscrete([2, 2])),
        max_episode_steps=20,
    )
    gym.register(
        "MbrlBenchUnbounded-v0",
        entry_point=lambda: _DictObsEnv(gym.spaces.Box(-np.inf, np.inf, (1,))),
    )
    yield
    for i in ("MbrlBenchDict-v0", "MbrlBenchMulti-v0", "MbrlBenchUnbounded-v0"):
        gym.registry.pop(i, None)


def test_dict_observations_are_flattened_and_bad_actions_refused(toy_ids):
    spec = make_task("gym:MbrlBenchDict-v0")
    assert spec.obs_dim == 5 and spec.max_episode_steps == 20
    obs, _ = spec.make_env().reset(seed=0)
    assert obs.shape == (5,)
    with pytest.raises(UnknownNameError, match=r"MultiDiscrete.*not supported"):
        TASKS["gym:MbrlBenchMulti-v0"]
    with pytest.raises(UnknownNameError, match=r"infinite bounds.*ClipAction"):
        TASKS["gym:MbrlBenchUnbounded-v0"]


@pytest.mark.parametrize(
    ("algo", "task", "words"),
    [
        ("lqr", "gym:Swimmer-v5", ["'lqr' needs linearization"]),
        ("ilqg", "dmc:cheetah-run", ["'ilqg' needs reward_fn"]),
        ("pilco", "gym:Swimmer-v5", ["saturating cost"]),
        ("sac", "gym:CartPole-v1", ["continuous_actions"]),
        ("mbpo", "gym:Swimmer-v5 oracle", ["oracle=true scores with the task's own"]),
        ("pets", "gym:Swimmer-v5 nolearn", ["'pets' needs reward_fn", "model.learn_reward"]),
        ("mve", "gym:Hopper-v5 noterm", ["termination_fn", "model.termination.learn"]),
    ],
)
def test_unsupported_pairings_fail_before_any_trial(algo, task, words):
    task, _, flag = task.partition(" ")
    overrides = {
        "oracle": {"oracle": True},
        "nolearn": {"model.learn_reward": False},
        "noterm": {"model.termination.learn": False},
    }.get(flag, {})
    with pytest.raises(ConfigError) as err:
        resolve(TrialSpec(algo, task, 0, 1000, overrides=overrides))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_learned_models_learn_what_the_task_lacks():
    _, _, pets = resolve(TrialSpec("pets", "gym:Swimmer-v5", 0, 1000))
    assert pets.model.learn_reward is True and pets.model.termination.learn is True
    _, _, pets = resolve(TrialSpec("pets", "dmc:cartpole-swingup@1", 0, 1000))
    assert pets.model.learn_reward is False and pets.model.termination.learn is False
    _, _, pets = resolve(TrialSpec("pets", "dmc:cartpole-swingup", 0, 1000))
    assert pets.model.learn_reward is True and pets.model.termination.learn is False
    _, _, mbpo = resolve(TrialSpec("mbpo", "hopper", 0, 1000))  # hand-written: unchanged
    assert mbpo.model.learn_reward is True and mbpo.model.termination.learn is False


# --- the DMC env ---------------------------------------------------------------------------------


def test_dmc_action_repeat_sums_the_suite_steps_and_seeds_reset():
    twice, once = DMCEnv("cheetah", "run", 2), DMCEnv("cheetah", "run", 1)
    o2, _ = twice.reset(seed=3)
    o1, _ = once.reset(seed=3)
    np.testing.assert_array_equal(o1, o2)
    assert not np.array_equal(o1, once.reset(seed=4)[0])
    np.testing.assert_array_equal(once.reset(seed=3)[0], o1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 6)
        n2, r2, *_ = twice.step(a)
        _, ra, *_ = once.step(a)
        n1, rb, *_ = once.step(a)
        np.testing.assert_array_equal(n1, n2)
        assert r2 == pytest.approx(ra + rb, abs=1e-12)


def test_dmc_episode_is_cut_by_the_time_limit_never_terminated():
    env = make_task("dmc:pendulum-swingup").make_env()
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, r, terminated, truncated, _ = env.step(np.zeros(1))
        assert 0.0 <= r <= 2.0
        steps += 1
    assert (steps, terminated, truncated) == (500, False, True)


# --- the learned termination predictor --------------------------------------------------------------


def test_learned_termination_learns_a_threshold_and_says_never_before_any_end():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    term = LearnedTermination(2, 1, TerminationConfig(hidden=32, layers=2, lr=1e-2))
    obs = torch.as_tensor(rng.normal(size=(2000, 2)), dtype=torch.float32)
    act = torch.as_tensor(rng.uniform(-1, 1, (2000, 1)), dtype=torch.float32)
    nxt = obs + 0.1 * act
    done = (nxt[:, 0] > 1.0).float()  # a fall: first coordinate past a threshold
    assert not term(obs, act, nxt).any()  # nothing seen yet: never
    assert term.fit(obs, act, nxt, torch.zeros(2000), batches=10, rng=rng) == {}
    assert not term.trained
    stats = term.fit(obs, act, nxt, done, batches=600, rng=rng)
    assert stats["model_term_recall"] > 0.9
    pred = term(obs, act, nxt)
    assert pred.dtype == torch.bool and pred.shape == (2000,)
    assert (pred == done.bool()).float().mean() > 0.97
    p = term.probability(obs[:5], act[:5], nxt[:5])
    assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()
    again = LearnedTermination(2, 1, TerminationConfig(hidden=32, layers=2, lr=1e-2))
    again.load_state_dict(term.state_dict())
    assert torch.equal(again(obs, act, nxt), pred)


# --- short trials: every learned-model family on a task with a learned reward and termination ----

_MODEL = {"model.hidden": 32, "model.max_epochs": 2}
_SAC = {"initial_random_steps": 100, "model.train_every": 100, "updates_per_step": 1,
        "sac.batch_size": 32, "sac.hidden": 32, **_MODEL}  # fmt: skip
SHORT = {
    "mbpo": {**_SAC, "epoch_length": 100, "rollouts_per_step": 2},
    "dyna": {**_SAC, "epoch_length": 100, "rollouts_per_step": 2, "rollout_horizon": 10},
    "mve": {**_SAC, "horizon": 2},
    "steve": {**_SAC, "horizon": 2},
    "pets": {
        "population": 32,
        "elites": 4,
        "horizon": 5,
        "particles": 2,
        "iterations": 2,
        "initial_random_steps": 100,
        **_MODEL,
    },
    "rs": {"population": 32, "horizon": 5, "initial_random_steps": 100, **_MODEL},
    **{
        name: {
            "oracle": False,
            "population": 32,
            "horizon": 5,
            "particles": 2,
            "iterations": 2,
            "initial_random_steps": 100,
            **({"elites": 4} if name != "mppi" else {}),
            **_MODEL,
        }
        for name in ("cem", "mppi", "icem")
    },
}


@pytest.mark.parametrize("algo", list(SHORT))
def test_learned_model_plugins_run_on_a_terminating_gym_id(algo):
    """InvertedPendulum through ``gym:`` (no functions): the model learns the reward and the
    termination predictor its rollouts end on; the trial runs, logs and the predictor trains."""
    spec = TrialSpec(
        algo, "gym:InvertedPendulum-v5", 0, 300, eval_every=300, eval_episodes=1,
        overrides=SHORT[algo], device="cpu", threads=1,
    )  # fmt: skip
    rows = run_trial(spec)
    metrics = {r["metric"] for r in rows}
    assert "eval_return" in metrics
    assert {"model_term_loss", "model_term_recall"} <= metrics, sorted(metrics)


def test_namespaced_names_make_portable_file_names():
    from benchmark.trial import file_part, trial_name

    assert trial_name(TrialSpec("sac", "gym:Swimmer-v5", 0, 10)) == "sac__gym_Swimmer-v5__s0"
    assert file_part("dmc:cheetah-run@4") == "dmc_cheetah-run_4"
    assert file_part("hopper") == "hopper"  # registered names are unchanged


def test_every_offered_dmc_task_resets_and_steps():
    """The generic ids: every suite task offered builds, resets with a seed and steps."""
    from envs.dmc import task_names

    names = task_names()
    assert len(names) == 48 and "dmc:quadruped-escape" not in names
    for name in names:
        spec = make_task(name)
        env = spec.make_env()
        obs, _ = env.reset(seed=0)
        nxt, reward, terminated, _, _ = env.step(np.zeros(spec.act_dim, np.float32))
        assert obs.shape == nxt.shape == (spec.obs_dim,), name
        assert np.isfinite(reward) and not terminated, name
        env.close()


class _Stop(Exception):
    pass


def _stop_after_eval_at_300(new, rows):
    if any(r["metric"] == "eval_return" and r["env_step"] == 300 for r in new):
        raise _Stop


def test_learned_termination_resumes_exactly(tmp_path):
    """The predictor's weights, normalizer and optimizer are part of the checkpoint: stopped
    after its evaluation at 300 steps and resumed, MBPO on a ``gym:`` id ends with the rows of
    an uninterrupted run."""
    from benchmark.trial import read_checkpoint

    spec = TrialSpec(
        "mbpo", "gym:InvertedPendulum-v5", 0, 600, eval_every=300, eval_episodes=1,
        overrides=SHORT["mbpo"], device="cpu", threads=1,
    )  # fmt: skip
    with pytest.raises(_Stop):
        run_trial(spec, trial_dir=tmp_path, report=_stop_after_eval_at_300, checkpoint_every_s=0)
    assert read_checkpoint(tmp_path) is not None
    resumed = [
        (r["env_step"], r["metric"], r["value"]) for r in run_trial(spec, trial_dir=tmp_path)
    ]
    reference = [(r["env_step"], r["metric"], r["value"]) for r in run_trial(spec)]
    volatile = {"steps_per_s"}
    resumed = [r for r in resumed if r[1] not in volatile]
    reference = [r for r in reference if r[1] not in volatile]
    assert any(m == "model_term_loss" for _, m, _ in reference)
    assert resumed == reference
