"""The speed scripts (``benchmark/perf``) still run: each at its smallest settings, one timed call.

They print the figures docs/performance.md and the algorithm pages quote, so a refactor that
breaks one (a renamed method, a new argument) must fail here, not when the next measurement is
due. Nothing is timed: these check that the scripts run and print their table.
"""

from __future__ import annotations

import importlib

import pytest

SMALL = {
    "ensemble": "--threads 1 --members 2 --hidden 8 --layers 2 --batch 4 --iters 1 --rounds 1 --warmup 0",
    "exploration": "--episodes 1 --repeats 1 --mus 2 --held 2 --gains 0 --lookahead 1",
    "ilqg": "--horizon 3 --iterations 1 --steps 1 --warmup 0",
    "mbpo": "--threads 1 --init-steps 300 --steps 2 --set model.max_epochs=1",
    "mcts": "--sims 4 --trees 1 2 --moves 1 --warmup 0",
    "mcts_gumbel": "--sims 4 --trees 1 2 --moves 1 --warmup 0 --set gumbel=true",
    "pilco": "--task pendulum --points 10 --horizon 3 --policy-iterations 1 --repeats 1",
    "planning": (
        "--threads 1 --members 2 --elites-model 2 --hidden 8 --layers 2 --population 8 "
        "--horizon 3 --iterations 1 --particles 2 --warmup 0 --repeats 1 --no-cuda"
    ),
    "sac": "--hidden 8 --iters 1 --repeats 1 --warmup 0",
    "tdmpc2": (
        "--sizes 1 --init-steps 40 --iters 1 --repeats 1 --warmup 0 "
        "--set num_samples=16 num_elites=4 num_pi_trajs=4 batch_size=4 horizon=2"
    ),
    "value_expansion": "--init-steps 200 --iters 1 --repeats 1 --warmup 0",
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_speed_script_runs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"benchmark.perf.{name.removesuffix('_gumbel')}")
    module.main(SMALL[name].split())
    out = capsys.readouterr().out
    assert out.count("\n") >= 2, f"benchmark.perf.{name} printed no table:\n{out}"


def test_acrobot_bang_bang_reference_reaches_the_goal_and_holding_costs() -> None:
    """The reference controller the Acrobot action-repeat figures lean on swings up in well under
    the 500-step limit, and holding its decisions 4 steps costs it return."""
    from benchmark.perf.exploration import bang_bang_return

    one = bang_bang_return(1, -0.5, episodes=5, seed=0)
    four = bang_bang_return(4, -0.5, episodes=5, seed=0)
    assert -150 < one
    assert four < one


def test_acrobot_rollout_reference_improves_on_its_base_controller() -> None:
    """The rollout policy over the bang-bang controller (which the Acrobot figures quote as what
    a held-4 policy can reach) does at least as well as the controller on the same starts, as
    policy improvement over a fixed base policy on an exact model must."""
    from benchmark.perf.exploration import bang_bang_return, rollout_return

    base = bang_bang_return(4, -3.0, episodes=4, seed=0)
    roll = rollout_return(4, -3.0, lookahead=1, episodes=4, seed=0)
    assert base < -100 and roll >= base


def test_critic_table_of_a_checkpointed_tdmpc2_trial(tmp_path, capsys) -> None:
    """``benchmark.perf.critic`` reads an unfinished trial's checkpoint (read only: it is still
    there, byte for byte) and prints a row per return bin; the returns-to-go restart at every
    episode; a trial without a checkpoint is one line naming the fix."""
    import dataclasses
    import json

    import numpy as np
    from smoke import run_to_eval_at_200, smoke_spec

    from benchmark.driver import load_agent
    from benchmark.perf.critic import critic_table, main, returns_to_go, steps_left

    ep = np.array([0, 0, 0, 1, 1])
    assert returns_to_go(np.array([1.0, 2.0, 4.0, 1.0, 1.0]), ep, 0.5).tolist() == [
        3.0, 4.0, 4.0, 1.5, 1.0,
    ]  # fmt: skip
    assert steps_left(ep).tolist() == [2, 1, 0, 1, 0]
    spec = smoke_spec("tdmpc2", total_steps=600)
    run_to_eval_at_200(spec, trial_dir=tmp_path, checkpoint_every_s=0)
    (tmp_path / "spec.json").write_text(json.dumps(dataclasses.asdict(spec)))  # as trial.py
    ckpt = (tmp_path / "checkpoint.pt").read_bytes()
    algo, _, _, step = load_agent(tmp_path, checkpoint=True)
    rows = critic_table(algo, samples=50)
    assert step == 200 and sum(r["n"] for r in rows) == 50
    main([str(tmp_path), "--checkpoint", "--samples", "20", "--updates", "2", "--every", "1"])
    out = capsys.readouterr().out
    assert "after 1 more fp32 updates" in out and "after 2 more" in out
    assert (tmp_path / "checkpoint.pt").read_bytes() == ckpt
    with pytest.raises(FileNotFoundError, match="drop checkpoint=True"):
        load_agent(tmp_path / "none", checkpoint=True)


def test_muzero_value_by_age_by_hand(capsys) -> None:
    """``benchmark.perf.muzero_value``: a terminated episode's first value and return by hand
    (discount 0.5), a truncated one counted but left out of the means; a missing trial is one
    line naming the fix."""
    import math

    import numpy as np
    import torch

    from algorithms import RunContext
    from algorithms.api import Transition, apply_overrides
    from algorithms.muzero import MuZeroAgent, MuZeroConfig
    from benchmark.perf.muzero_value import main, value_by_age
    from envs import TASKS

    cfg = apply_overrides(MuZeroConfig(), {"discount": 0.5})
    agent = MuZeroAgent(TASKS["cartpole"].resolve(), cfg, RunContext.from_seed(0))
    for length, truncated in ((2, False), (3, True)):
        for i in range(length):
            obs = np.full(4, 0.1 * i, np.float32)
            agent._last = (np.array([0.5, 0.5]), 0.0)
            last = i == length - 1
            agent.observe(Transition(obs, np.array([0.0], np.float32), 1.0, obs,
                                     last and not truncated, last and truncated))  # fmt: skip
    first, second = value_by_age(agent, parts=2)
    with torch.no_grad():
        v = agent.net.value(agent.net.predict(agent.net.represent(torch.zeros(1, 4)))[1])
    assert (first["episodes"], first["terminated"]) == (1, 1)
    assert first["G0"] == 1.5 and first["v0"] == pytest.approx(float(v[0]))
    assert (second["episodes"], second["terminated"]) == (1, 0) and math.isnan(second["G0"])
    assert main(["/nonexistent/trial"]) == 2
    assert "error:" in capsys.readouterr().err
