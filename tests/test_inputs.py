"""Bad input fails before Ray starts, with one line that names the problem and the fix.

Budgets, seeds, ``SET`` values and keys, and malformed or ill-typed suite files, through
``python -m benchmark run`` in process (fast); one case runs in a fresh interpreter to prove that
Ray is never imported (this test process may have imported it elsewhere).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.__main__ import main
from benchmark.driver import resolve_config
from benchmark.suites import GridRequest, SuiteError, expand, parse_seeds, parse_set

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--algos", "sac", "--envs", "pendulum"]


def run_cli(capsys, tmp_path: Path, *args: str) -> list[str]:
    """``python -m benchmark run ARGS`` in process; asserts a clean rejection, returns the lines."""
    results = tmp_path / "results"
    rc = main(["run", "--results", str(results), *args])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert not results.exists() or not any(results.iterdir()), "nothing is written"
    lines = err.splitlines()
    assert lines and all(line.strip() for line in lines), err
    assert lines[0].startswith("error: ")
    return lines


def one_line(capsys, tmp_path: Path, *args: str) -> str:
    lines = run_cli(capsys, tmp_path, *args)
    assert len(lines) == 1, lines
    return lines[0]


def suite_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---------------------------------------------------------------- budgets (STEPS=, ...)
@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots", "1e4", ""])
def test_steps_must_be_a_positive_integer(capsys, tmp_path, value):
    line = one_line(capsys, tmp_path, *GRID, "--steps", value)
    assert line == (
        f"error: STEPS (--steps) must be a positive integer number of env steps, got {value!r}"
    )


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--eval-every", "0", "--eval-every must be a positive integer number of env steps"),
        ("--eval-every", "-3", "--eval-every must be a positive integer number of env steps"),
        ("--eval-every", "often", "--eval-every must be a positive integer"),
        ("--eval-episodes", "-1", "--eval-episodes must be an integer >= 0 (episodes per"),
        ("--eval-episodes", "2.5", "--eval-episodes must be an integer >= 0"),
    ],
)
def test_evaluation_settings_are_checked(capsys, tmp_path, flag, value, expected):
    line = one_line(capsys, tmp_path, *GRID, flag, value)
    assert expected in line and line.endswith(f"got {value!r}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cpus-per-trial", "0"], "argument --cpus-per-trial: must be an integer >= 1, got '0'"),
        (["--num-cpus", "x"], "argument --num-cpus: must be an integer >= 1, got 'x'"),
        (["--gpus-per-trial", "-1"], "argument --gpus-per-trial: must be a number >= 0"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_argparse_errors_are_one_line(capsys, tmp_path, args, expected):
    with pytest.raises(SystemExit) as e:
        main(["run", "--results", str(tmp_path / "r"), *GRID, *args])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and not out
    assert err.count("\n") == 1 and err.startswith(f"error: {expected}")
    assert "--help" in err and not (tmp_path / "r").exists()


def test_budgets_in_code_are_checked_too():
    """A GridRequest built in code gets the same checks: 0 is not "the suite's default"."""
    for kwargs in ({"steps": 0}, {"steps": -5}, {"eval_every": 0}, {"eval_episodes": -1}):
        req = GridRequest(algos=["random"], tasks=["pendulum"], **kwargs)
        with pytest.raises(SuiteError, match="must be"):
            expand(req)


def test_eval_episodes_zero_is_allowed():
    req = GridRequest(algos=["random"], tasks=["pendulum"], seeds=1, steps=10, eval_episodes=0)
    assert [s.eval_episodes for s in expand(req)] == [0]


# ---------------------------------------------------------------- seeds
@pytest.mark.parametrize(
    ("value", "seeds"),
    [
        (3, (0, 1, 2)),
        ("3", (0, 1, 2)),
        ("3-4", (3, 4)),
        (" 2 - 2 ", (2,)),
        ("0,2,5", (0, 2, 5)),
        ([1, 7], (1, 7)),
        ((4, 5), (4, 5)),
    ],
)
def test_seeds_as_count_range_or_list(value, seeds):
    assert parse_seeds(value) == seeds


@pytest.mark.parametrize("value", ["0", "-1", "4-3", "x", "1,1", "3-", "1.5", ""])
def test_bad_seeds_fail_in_one_line(capsys, tmp_path, value):
    line = one_line(capsys, tmp_path, *GRID, "--seeds", value)
    assert line.startswith("error: SEEDS (--seeds) must be a number of seeds N >= 1")
    assert "3-4" in line and "0,2,5" in line and line.endswith(f"got {value!r}")


@pytest.mark.parametrize("value", [0, -1, True, 2.0, [], [1, -1], [1, 1], None])
def test_bad_seed_values(value):
    with pytest.raises(SuiteError, match="must be a number of seeds"):
        parse_seeds(value)


def test_expand_runs_exactly_the_requested_seeds():
    req = GridRequest(algos=["random"], tasks=["pendulum"], steps=10, seeds=parse_seeds("3-4"))
    assert [s.seed for s in expand(req)] == [3, 4]
    req = GridRequest(algos=["random"], tasks=["pendulum"], steps=10, seeds=2)
    assert [s.seed for s in expand(req)] == [0, 1]
    with pytest.raises(SuiteError, match="SEEDS"):
        expand(GridRequest(algos=["random"], tasks=["pendulum"], steps=10, seeds=0))


@pytest.mark.parametrize(
    ("value", "seeds"), [("2", [0, 1]), ('"3-4"', [3, 4]), ("0,2,5", [0, 2, 5])]
)
def test_suite_seeds_accept_the_same_forms(tmp_path, value, seeds):
    suite = suite_file(tmp_path, f"seeds: {value}\ntasks: {{pendulum: {{steps: 10}}}}\n")
    req = GridRequest(suite=suite, algos=["random"], tasks=["pendulum"])
    assert [s.seed for s in expand(req)] == seeds
    # the command line wins over the suite
    req = GridRequest(suite=suite, algos=["random"], tasks=["pendulum"], seeds=(7,))
    assert [s.seed for s in expand(req)] == [7]


# ---------------------------------------------------------------- SET
def test_set_parses_yaml_values_and_scientific_notation():
    got = parse_set(
        ["sac.lr=1e-3", "sac.tau=5E-3", "sac.gamma=0.99", "cem.oracle=true", 'rs.mode="true"']
    )
    assert got == {
        "sac": {"lr": 0.001, "tau": 0.005, "gamma": 0.99},
        "cem": {"oracle": True},
        "rs": {"mode": "true"},
    }
    # everything after the algorithm is a dotted path into its config
    assert parse_set(["mbpo.sac.lr=1e-3", "mbpo.model.hidden=400"]) == {
        "mbpo": {"sac.lr": 0.001, "model.hidden": 400}
    }
    assert parse_set(["mbpo.rollout_schedule=[20, 150, 1, 15]"]) == {
        "mbpo": {"rollout_schedule": [20, 150, 1, 15]}
    }
    assert parse_set(["sac.batch_size=128"])["sac"]["batch_size"] == 128


def test_set_scientific_notation_reaches_the_config():
    req = GridRequest(
        algos=["sac"], tasks=["pendulum"], seeds=1, steps=10, overrides=parse_set(["sac.lr=1e-3"])
    )
    (spec,) = expand(req)
    assert spec.overrides["lr"] == 0.001
    _, config = resolve_config(spec)
    assert config.lr == 0.001 and isinstance(config.lr, float)


def test_set_booleans_keep_working():
    req = GridRequest(
        algos=["cem"],
        tasks=["pendulum"],
        seeds=1,
        steps=10,
        overrides=parse_set(["cem.oracle=true"]),
    )
    (spec,) = expand(req)
    assert resolve_config(spec)[1].oracle is True


def test_dotted_set_paths_reach_the_nested_configs():
    req = GridRequest(
        algos=["mbpo"],
        tasks=["pendulum"],
        seeds=1,
        steps=10,
        overrides=parse_set(["mbpo.sac.lr=1e-3", "mbpo.model.hidden=400"]),
    )
    (spec,) = expand(req)
    _, config = resolve_config(spec)
    assert config.sac.lr == 0.001 and config.model.hidden == 400
    assert config.model.learn_reward and config.model.train_every == 250  # MBPO's own defaults


def test_suite_nested_mappings_and_dotted_keys_merge(tmp_path):
    """``model: {hidden: 400}`` and ``model.layers: 3`` are one nested override; a task's key
    wins over the default's for the same path, SET over both, the rest is kept."""
    suite = suite_file(
        tmp_path,
        """\
        algos:
          pets:
            default: {model: {hidden: 400, layers: 3}, horizon: 10}
            pendulum: {model.hidden: 300}
        """,
    )
    req = GridRequest(
        suite=suite,
        algos=["pets"],
        tasks=["pendulum"],
        steps=10,
        overrides=parse_set(["pets.model.layers=2"]),
    )
    (spec,) = expand(req)
    assert spec.overrides == {"model.hidden": 300, "model.layers": 2, "horizon": 10}
    _, config = resolve_config(spec)
    assert (config.model.hidden, config.model.layers, config.horizon) == (300, 2, 10)
    assert config.model.members == 5 and config.model.batch_size == 32  # PETS's recipe kept


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("sac.lr=-1", "hyperparameter 'lr' of SACConfig (sac on pendulum) must be > 0, got -1.0"),
        ("sac.lr=0", "hyperparameter 'lr' of SACConfig (sac on pendulum) must be > 0, got 0.0"),
        ("sac.gamma=1.5", "'gamma' of SACConfig (sac on pendulum) must be in (0, 1], got 1.5"),
        ("sac.batch_size=0", "'batch_size' of SACConfig (sac on pendulum) must be >= 1, got 0"),
        (
            "sac.initial_random_steps=-1",
            "'initial_random_steps' of SACConfig (sac on pendulum) must be >= 0",
        ),
        ("sac.lr=.nan", "'lr' of SACConfig (sac on pendulum) must be > 0, got nan"),
        (
            "sac.batch_size=big",
            "'batch_size' of SACConfig (sac on pendulum) must be int, got 'big'",
        ),
        ("sac.lrr=0.1", "unknown hyperparameter 'lrr' for SACConfig (sac on pendulum). Did you"),
    ],
)
def test_bad_hyperparameters_fail_in_one_line(capsys, tmp_path, item, expected):
    line = one_line(capsys, tmp_path, *GRID, "--set", item)
    assert line == f"error: {expected}" or expected in line


@pytest.mark.parametrize(
    ("algo", "item", "expected"),
    [
        (
            "mbpo",
            "mbpo.model.hiden=400",
            "error: unknown hyperparameter 'model.hiden' for MBPOConfig (mbpo on pendulum). "
            "Did you mean 'model.hidden'?",
        ),
        (
            "mbpo",
            "mbpo.sac.lr=-1",
            "error: hyperparameter 'sac.lr' of MBPOConfig (mbpo on pendulum) must be > 0, got -1.0",
        ),
        (
            "pets",
            "pets.model.elites=9",
            "error: PETSConfig (pets on pendulum): model.elites must be in [1, members=5], got 9",
        ),
        (
            "cem",
            "cem.model=true",
            "error: hyperparameter 'model' of CEMConfig (cem on pendulum) is a nested config, not "
            "a value",
        ),
        # former flat keys name their new path
        ("mbpo", "mbpo.lr=1e-3", "'lr' of MBPOConfig (mbpo on pendulum) is now 'sac.lr'"),
        ("mbpo", "mbpo.model_hidden=400", "'model_hidden' of MBPOConfig (mbpo on pendulum) is now"),
        ("pets", "pets.hidden_size=400", "'hidden_size' of PETSConfig (pets on pendulum) is now"),
        (
            "sac",
            "sac.learning_starts=10",
            "'learning_starts' of SACConfig (sac on pendulum) is now",
        ),
        ("ilqg", "ilqg.num_layers=2", "'num_layers' of ILQGConfig (ilqg on pendulum) is now"),
        ("pilco", "pilco.random_trials=2", "'random_trials' of PILCOConfig (pilco on pendulum) is"),
    ],
)
def test_bad_nested_hyperparameters_fail_in_one_line(capsys, tmp_path, algo, item, expected):
    line = one_line(capsys, tmp_path, "--algos", algo, "--envs", "pendulum", "--set", item)
    assert line.startswith(expected) or expected in line, line
    new = {
        "mbpo.lr": "'sac.lr'",
        "mbpo.model_hidden": "'model.hidden'",
        "pets.hidden_size": "'model.hidden'",
        "sac.learning_starts": "'initial_random_steps'",
        "ilqg.num_layers": "'model.layers'",
        "pilco.random_trials": "'initial_random_episodes'",
        "cem.model": "'oracle'",
    }.get(item.partition("=")[0])
    assert new is None or new in line, line


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("sac.lr", "SET 'sac.lr': expected ALGO.KEY=VALUE, e.g. sac.lr=0.001"),
        ("lr=0.1", "SET 'lr=0.1': expected ALGO.KEY=VALUE"),
        ("sac.lr=[1", "SET 'sac.lr=[1': the value '[1' is not valid YAML"),
        ("sacc.lr=1", "unknown algorithm 'sacc'. Did you mean 'sac'?"),
    ],
)
def test_malformed_set_items(capsys, tmp_path, item, expected):
    assert expected in one_line(capsys, tmp_path, *GRID, "--set", item)


@pytest.mark.parametrize("item", ["sac.lr=0.001", "sac.no_such_key=1"])
def test_set_for_an_algorithm_outside_the_grid(capsys, tmp_path, item):
    line = one_line(capsys, tmp_path, "--algos", "random,lqr", "--envs", "pendulum", "--set", item)
    assert line == (
        f"error: SET {item} names algorithm 'sac', which is not in this grid (random, lqr); "
        "drop it or add it to ALGOS"
    )


def test_several_problems_one_line_each(capsys, tmp_path):
    lines = run_cli(
        capsys, tmp_path, "--algos", "sac,lqr", "--envs", "pendulum,hopper",
        "--set", "mbpo.lr=0.1", "sac.lr=-2", "--steps", "10",
    )  # fmt: skip
    assert lines[0] == "error: the benchmark cannot start:"
    problems = lines[1:]
    assert len(problems) == 4, lines  # mbpo outside the grid, sac.lr on two tasks, lqr on hopper
    assert all(p.startswith("  - ") for p in problems)
    assert any("'mbpo', which is not in this grid" in p for p in problems)
    assert sum("must be > 0, got -2.0" in p for p in problems) == 2
    assert any("'lqr' needs linearization" in p for p in problems)


# ---------------------------------------------------------------- suite files
BAD_SUITES = [
    ("seeds: [1, 2\n", ["line 2", "invalid YAML", "fix the syntax"]),
    ("tasks:\n  pendulum: {steps: 10\nalgos: {}\n", ["line 3", "invalid YAML"]),
    ("- 1\n- 2\n", ["a suite is a mapping with keys", "got list"]),
    ("seeds: three\n", [": seeds must be a number of seeds N >= 1", "got 'three'"]),
    ("seeds: 0\n", [": seeds must be a number of seeds", "got 0"]),
    ("seeds: 4-3\n", [": seeds must be", "got '4-3'"]),
    ("tasks: {pendulum: {steps: lots}}\n", [": tasks.pendulum.steps must be a positive integer"]),
    ("tasks: {pendulum: {steps: 0}}\n", [": tasks.pendulum.steps must be a positive", "got 0"]),
    ("tasks: {pendulum: {steps: -5}}\n", [": tasks.pendulum.steps must be", "got -5"]),
    ("tasks: {pendulum: {eval_every: 2.5}}\n", [": tasks.pendulum.eval_every must be"]),
    ("tasks: {pendulum: 5000}\n", [": tasks.pendulum must be a mapping like {steps: 5000}"]),
    ("tasks: {pendulum: {stepz: 5}}\n", [": tasks.pendulum has unknown keys ['stepz']"]),
    ("tasks: {pendullum: {steps: 5}}\n", [": tasks: unknown task 'pendullum'", "Did you mean"]),
    ("tasks: [pendulum]\n", [": tasks must be a mapping task -> {steps: ...}"]),
    ("algos: [sac]\n", [": algos must be a mapping algorithm -> settings"]),
    ("algos: {sac: fast}\n", [": algos.sac must be a mapping like {default: {...}}"]),
    ("algos: {sacc: {}}\n", [": algos: unknown algorithm 'sacc'", "Did you mean 'sac'"]),
    (
        "algos: {sac: {steps: {pendulum: lots}}}\n",
        [": algos.sac.steps.pendulum must be a positive"],
    ),
    (
        "algos: {sac: {steps: 5000}}\n",
        [": algos.sac.steps must be a mapping like {pendulum: 5000}"],
    ),
    ("algos: {sac: {eval_episodes: {pendulum: -1}}}\n", ["algos.sac.eval_episodes.pendulum must"]),
    ("algos: {sac: {steps: {pendullum: 5}}}\n", ["algos.sac.steps: unknown task 'pendullum'"]),
    ("algos: {sac: {seeds: 2}}\n", [": algos.sac.seeds must be a mapping like {pendulum: 1}"]),
    ("algos: {sac: {seeds: {pendulum: 0}}}\n", [": algos.sac.seeds.pendulum must be a number"]),
    ("algos: {sac: {default: [1]}}\n", [": algos.sac.default must be a mapping like {lr: 0.001}"]),
    ("algos: {sac: {speed: 1}}\n", [": algos.sac has unknown key 'speed'"]),
    ("grid: sac pendulum\n", [": grid must be a list of [[algorithms], [tasks]] pairs"]),
    ("grid: [[sac, pendulum]]\n", ["grid entry 1 must be a pair [[algorithms], [tasks]]"]),
    ("grid: [[sac, [pendulum]]]\n", ["grid entry 1 must be a pair [[algorithms], [tasks]]"]),
    (
        "grid: [[[sac], [pendulum], [hopper]]]\n",
        ["grid entry 1 must be a pair [[algorithms], [tasks]]"],
    ),
    ("grid: [[[sacc], [pendulum]]]\n", ["grid entry 1, algorithms: unknown algorithm 'sacc'"]),
    ("grid: [[[sac], [5]]]\n", ["grid entry 1, tasks: 5 is not a task name"]),
    ("default_steps: 0\n", [": default_steps must be a positive integer number of env steps"]),
    ("eval_episodes: -1\n", [": eval_episodes must be an integer >= 0", "got -1"]),
    ("eval_every: often\n", [": eval_every must be a positive integer", "got 'often'"]),
    ("description: [1]\nseeds: 1\n", [": description must be text"]),
    ("steps: 5000\n", [": unknown keys ['steps']; valid:"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD_SUITES)
def test_bad_suite_files_fail_in_one_line(capsys, tmp_path, text, expected):
    suite = suite_file(tmp_path, text)
    line = one_line(capsys, tmp_path, "--suite", suite, *GRID)
    assert line.startswith(f"error: {suite}")
    for text in expected:
        assert text in line


def test_a_suite_with_several_problems_lists_each(capsys, tmp_path):
    suite = suite_file(tmp_path, "seeds: three\neval_episodes: -1\ngrid: x\n")
    lines = run_cli(capsys, tmp_path, "--suite", suite)
    assert lines[0] == f"error: suite {suite} has 3 problems:"
    assert len(lines) == 4 and all(line.startswith(f"  - {suite}: ") for line in lines[1:])


def test_hyperparameters_in_a_suite_are_checked(capsys, tmp_path):
    suite = suite_file(tmp_path, "algos: {sac: {default: {lr: -1}}}\n")
    line = one_line(capsys, tmp_path, "--suite", suite, *GRID, "--steps", "10")
    assert line == "error: hyperparameter 'lr' of SACConfig (sac on pendulum) must be > 0, got -1.0"
    # scientific notation is a float in suite files too
    suite = suite_file(tmp_path, "algos: {sac: {default: {lr: 2e-4}}}\n")
    (spec,) = expand(GridRequest(suite=suite, algos=["sac"], tasks=["pendulum"], steps=10))
    assert resolve_config(spec)[1].lr == 2e-4


def test_the_shipped_suites_are_valid():
    for name in ("quick", "paper"):
        assert expand(GridRequest(suite=name)), name


def test_rejected_before_ray_in_a_fresh_interpreter(tmp_path):
    """The checks run before Ray is imported: a fresh interpreter never loads it."""
    suite = suite_file(tmp_path, "seeds: three\n")
    results = str(tmp_path / "r")
    cases = [
        ["--steps", "0"],
        ["--set", "sac.lr=-1"],
        ["--suite", suite],
        ["--algos", "mbpo", "--envs", "pendulum", "--set", "mbpo.model.hiden=1"],
        ["--algos", "pets", "--envs", "pendulum", "--set", "pets.hidden_size=1"],
    ]
    probe = textwrap.dedent(
        f"""
        import sys, benchmark.__main__ as m
        for args in {cases!r}:
            rc = m.main(["run", "--results", {results!r}, *{GRID!r}, *args])
            assert rc == 2, (args, rc)
            print("---", file=sys.stderr)
        assert "ray" not in sys.modules, "ray was imported"
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    errors = res.stderr.split("---\n")[:-1]
    assert len(errors) == len(cases)
    assert all(len(e.splitlines()) == 1 and e.startswith("error: ") for e in errors), errors
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()
