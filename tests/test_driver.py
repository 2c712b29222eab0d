"""The driver on every registered algorithm: determinism, evaluation bookkeeping."""

from __future__ import annotations

import pytest
import torch
from smoke import load_fingerprint, rows_here, run_to_eval_at_200, smoke_spec, values

from benchmark.driver import TrialSpec, eval_curve, resolve, run_trial

# The smoke runs of every plugin (their SMOKE entries, bookkeeping and exact metric rows) are in
# tests/smoke.py and tests/test_fingerprints.py.


@pytest.mark.parametrize(
    "algo", ["random", "sac", "rs", "pets", "icem", "mppi", "mbpo", "dyna", "ilqg", "pilco"]
)
def test_same_seed_same_curve(algo):
    """The same seed gives the same curve, another seed another one. Where this machine kind has
    stored fingerprint rows, ``test_fingerprints.py`` already reruns the seed-0 smoke trial
    against them (and resumes it), so here the stored rows stand for the first run; elsewhere the
    trial runs twice. The other seed runs to its evaluation at step 200 only: its rows so far
    must differ from the same leading rows of seed 0."""
    spec = smoke_spec(algo)
    stored = load_fingerprint(algo)
    a = rows_here(stored) if stored is not None else None
    if a is None:
        a = values(run_trial(spec))
        assert values(run_trial(spec)) == a
    seen = run_to_eval_at_200(TrialSpec(**{**spec.__dict__, "seed": spec.seed + 1}))
    other = values(seen)
    assert other and other != a[: len(other)]


def test_eval_episodes_use_fixed_initial_states():
    spec = TrialSpec("random", "pendulum", seed=0, total_steps=200, eval_every=100, eval_episodes=2)
    lengths = [r["value"] for r in run_trial(spec) if r["metric"] == "eval_length"]
    assert lengths == [200.0] * 3


def test_resolve_checks_capabilities():
    from algorithms.api import ConfigError

    with pytest.raises(
        ConfigError, match="'lqr' needs linearization, which task 'hopper' does not"
    ):
        resolve(TrialSpec("lqr", "hopper", seed=0, total_steps=1))
    resolve(TrialSpec("lqr", "pendulum", seed=0, total_steps=1))  # pendulum offers it: no error


def test_zero_eval_episodes_leaves_the_training_curve():
    spec = TrialSpec("random", "pendulum", seed=0, total_steps=400, eval_every=200, eval_episodes=0)
    rows = run_trial(spec)
    assert eval_curve(rows) == []
    assert [r["env_step"] for r in rows if r["metric"] == "train_return"] == [200, 400]


def test_evaluation_logs_the_value_prediction_against_the_discounted_return():
    """An agent with a value function: at every evaluation the driver logs its mean prediction at
    the start states, the discounted return the episodes obtained (recomputed here by replaying
    the same seeds) and their difference; an agent without one logs neither."""
    import numpy as np

    from algorithms.api import Algorithm, RunContext
    from algorithms.random_policy import RandomPolicy
    from benchmark.driver import _episode_seed, evaluate
    from envs import TASKS

    task = TASKS["pendulum"].resolve()

    class ConstantValue(Algorithm):
        name = "constant"
        Config = RandomPolicy.Config
        value_discount = 0.9

        def act(self, obs, *, explore, info=None):
            return np.array([0.5], np.float32)

        def state_value(self, obs):
            return float(obs[0])  # cos(theta) of the start state

    env = task.make_env()
    seeds = [_episode_seed(0, 1, k) for k in range(3)]
    agent = ConstantValue(task, RandomPolicy.Config(), RunContext.from_seed(0))
    ev = evaluate(agent, env, task, seeds)
    preds, rets = [], []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        preds.append(obs[0])
        total, w, done = 0.0, 1.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(np.array([0.5], np.float32))
            total, w, done = total + w * r, w * 0.9, term or trunc
        rets.append(total)
    assert ev.value_pred == pytest.approx(np.mean(preds), rel=1e-6)
    assert ev.value_return == pytest.approx(np.mean(rets), rel=1e-6)
    assert ev.value_return != pytest.approx(ev.mean)  # discounted, not the plain return

    rows = run_trial(TrialSpec("random", "pendulum", seed=0, total_steps=200, eval_every=200))
    assert not {r["metric"] for r in rows} & {"value_pred", "value_return", "value_bias"}
    rows = run_trial(smoke_spec("sac"))
    got = {m: [v for s, v in eval_curve(rows, m)] for m in ("value_pred", "value_return")}
    bias = [v for s, v in eval_curve(rows, "value_bias")]
    assert len(bias) == 3 and bias == pytest.approx(
        [p - r for p, r in zip(got["value_pred"], got["value_return"], strict=True)]
    )


def test_evaluation_steps_reach_observe_eval_and_training_steps_do_not(monkeypatch):
    """``observe_eval`` gets every evaluation step (held-out data for diagnostics), in order,
    with the action sent; ``observe`` gets only the training steps."""
    import itertools

    import numpy as np

    from algorithms.random_policy import RandomPolicy
    from benchmark import driver

    seen: dict[str, list] = {"eval": [], "train": []}

    class Recording(RandomPolicy):
        name = "recording"

        def observe(self, transition):
            seen["train"].append(transition)

        def observe_eval(self, transition):
            seen["eval"].append(transition)

    real = driver.get_algorithm
    monkeypatch.setattr(
        driver, "get_algorithm", lambda n: Recording if n == "recording" else real(n)
    )
    spec = TrialSpec("recording", "pendulum", 0, total_steps=200, eval_every=100, eval_episodes=2)
    run_trial(spec)
    assert len(seen["train"]) == 200
    assert len(seen["eval"]) == 3 * 2 * 200  # evaluations at 0, 100 and 200, 2 episodes each
    first = seen["eval"][:200]
    assert all(np.array_equal(a.next_obs, b.obs) for a, b in itertools.pairwise(first))
    assert first[-1].truncated and not any(t.truncated for t in first[:-1])


@pytest.mark.parametrize("algo", ["sac", "dqn", "muzero"])
def test_a_finished_trial_saves_its_agent_and_reloading_it_reproduces_the_last_evaluation(
    algo, tmp_path
):
    """``agent.pt`` replaces the checkpoint when the trial finishes; :func:`load_agent` rebuilds
    the agent from it, and its deterministic policy on the trial's own evaluation start states
    returns exactly the last evaluation (these plugins' evaluation draws no random numbers)."""
    from benchmark.driver import AGENT_FILE, _episode_seed, evaluate, load_agent

    spec = smoke_spec(algo)
    rows = run_trial(spec, trial_dir=tmp_path)
    assert (tmp_path / AGENT_FILE).exists() and not (tmp_path / "checkpoint.pt").exists()
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads + 1)
    try:
        loaded, task, spec2, step = load_agent(tmp_path)
        assert torch.get_num_threads() == spec.threads, "the trial's threads, as it ran"
    finally:
        torch.set_num_threads(threads)
    assert spec2 == spec and step == spec.total_steps
    seeds = [_episode_seed(spec.seed, 1, k) for k in range(spec.eval_episodes)]
    env = task.make_env()
    assert evaluate(loaded, env, task, seeds).mean == eval_curve(rows)[-1][1]


def test_evaluate_command(tmp_path, capsys):
    """``python -m benchmark evaluate``: a saved agent on fresh start states, with a setting
    added; a folder without an agent, or a setting of another algorithm, is one line and
    status 2."""
    from benchmark.__main__ import main
    from benchmark.trial import execute

    spec = smoke_spec("muzero")
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "spec.json does not exist" in capsys.readouterr().err
    execute(spec, tmp_path / "t")
    assert main(["evaluate", str(tmp_path / "t"), "--set", "sac.lr=0.1"]) == 2
    assert "write muzero.KEY=VALUE" in capsys.readouterr().err
    argv = [
        "evaluate",
        str(tmp_path / "t"),
        "--episodes",
        "2",
        "--set",
        "muzero.eval_root_noise=true",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "muzero|cartpole|s0 at env step" in out and "2 episode(s)" in out
    lines = out.splitlines()
    assert lines[1].startswith("episode 0: return") and lines[2].startswith("episode 1: return")
    assert len(lines[3].split()) == 3  # "returns:" and the two returns
    assert main(["evaluate", str(tmp_path / "t"), "--set", "muzero.encoding=16"]) == 2
    assert "does not fit the added settings {'encoding': 16}" in capsys.readouterr().err
    (tmp_path / "t" / "agent.pt").unlink()
    assert main(["evaluate", str(tmp_path / "t")]) == 2
    assert "agent.pt does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "t"), "--checkpoint"]) == 2  # a finished trial
    assert "checkpoint.pt does not exist" in capsys.readouterr().err
