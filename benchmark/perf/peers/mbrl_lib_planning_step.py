"""Time one PETS/CEM planning step of the peer library mbrl-lib 0.2.0 on its continuous cart-pole.

Runs in mbrl-lib's own virtual environment (see ``README.md`` here), never in the project's::

    /tmp/peers/mbrl-lib/bin/python benchmark/perf/peers/mbrl_lib_planning_step.py --threads 2

What is built, entirely with mbrl-lib's own classes and helpers (nothing vendored):

- env ``mbrl.env.cartpole_continuous.CartPoleEnv`` (obs 4, action 1), reward
  ``mbrl.env.reward_fns.cartpole``, termination ``mbrl.env.termination_fns.cartpole``;
- the dynamics model as ``mbrl.algorithms.pets.train`` builds it: ``create_one_dim_tr_model``
  (a ``GaussianMLP`` ensemble inside a ``OneDTransitionRewardModel``: delta targets, input
  normalizer in double precision, 5 elites) and a ``ModelEnv``;
- the agent with ``create_trajectory_optim_agent_for_model``: a ``TrajectoryOptimizerAgent``
  around a ``CEMOptimizer``, scoring each candidate sequence as the mean return of its particles.

The configuration mirrors the composition of mbrl-lib's ``examples/conf/main.yaml``
(``algorithm/pets.yaml`` + ``dynamics_model/gaussian_mlp_ensemble.yaml`` +
``overrides/pets_cartpole.yaml`` + ``action_optimizer/cem.yaml``), built here because the
PyPI wheel lacks ``action_optimizer/cem.yaml``; the device is the CPU. Two values default to
what our side-by-side uses rather than to the shipped cart-pole files: ``--population-size``
500 (shipped: 350) and ``--propagation fixed_model``, i.e. PETS' TSinf (shipped:
``random_model``, TS1); both are flags. Everything else is the shipped value: 7 members, 4 hidden
layers of 200 (SiLU), ``deterministic=False``, 20 particles, CEM with 5 iterations, elite ratio
0.1, alpha 0.1, horizon 15, ``clipped_normal=False``, ``return_mean_elites=True``,
``replan_freq=1`` and ``keep_last_solution=True`` (the agent's default; warm-starts each plan
from the previous one shifted by a step).

The model is untrained (timing does not depend on the weights) but in the state a PETS run
plans with: its input normalizer is fitted to ``--normalizer-steps`` random env transitions
collected by mbrl-lib's ``rollout_agent_trajectories`` into its ``ReplayBuffer``, and an elite
set of ``num_elites`` members is set, as ``ModelTrainer`` does after each training. (The elites
also matter for correctness: with ``fixed_model``/``random_model`` propagation the
``population * particles`` rows must divide by the number of propagated members, and
500 * 20 does not divide by 7.)

Timed: ``agent.act(obs)`` with ``replan_freq=1``, i.e. one full CEM optimisation
(``iterations`` rounds of sampling ``population`` sequences, rolling each out ``particles``
times over ``horizon`` model steps, refitting the sampling distribution to the elites). After
each call the real env is stepped with the returned action (not timed), as in a control loop.
Reported: median and mean seconds per planning step over ``--iters`` calls after ``--warmup``.

FLOPs count only the MLP matmuls, analytically: ``population * particles`` rows per model step
(TSinf/TS1 split the rows among the elites, each row goes through exactly one member), times
``horizon * iterations`` steps, times ``2 * MACs`` of one member's forward
(``in*h + (layers-1)*h*h + h*2*out``). Normalisation, sampling, reward/termination functions and
CEM bookkeeping are not counted, so GFLOP/s is a lower bound on the arithmetic actually done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import mbrl
import mbrl.env.cartpole_continuous
import mbrl.env.reward_fns
import mbrl.env.termination_fns
import mbrl.models
import mbrl.planning
import mbrl.util.common
import numpy as np
import omegaconf
import torch


def build_cfg(args: argparse.Namespace) -> omegaconf.DictConfig:
    """The config ``mbrl/examples/main.py`` would compose for PETS on cart-pole (CPU)."""
    return omegaconf.OmegaConf.create(
        {
            "seed": args.seed,
            "device": "cpu",
            "debug_mode": False,
            # algorithm/pets.yaml
            "algorithm": {
                "name": "pets",
                "agent": {
                    "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
                    # hydra 1.3 would otherwise instantiate optimizer_cfg itself (1.0 did not)
                    "_recursive_": False,
                    "action_lb": "???",
                    "action_ub": "???",
                    "planning_horizon": "${overrides.planning_horizon}",
                    "optimizer_cfg": "${action_optimizer}",
                    "replan_freq": 1,
                    "verbose": "${debug_mode}",
                    "keep_last_solution": True,  # not in pets.yaml: the constructor's default
                },
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "initial_exploration_steps": "${overrides.trial_length}",
                "freq_train_model": "${overrides.freq_train_model}",
                "learned_rewards": "${overrides.learned_rewards}",
                "num_particles": args.particles,
            },
            # dynamics_model/gaussian_mlp_ensemble.yaml
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                # GaussianMLP builds activation_fn_cfg itself (hydra 1.0 semantics)
                "_recursive_": False,
                "device": "${device}",
                "num_layers": 4,
                "in_size": "???",
                "out_size": "???",
                "ensemble_size": 7,
                "hid_size": 200,
                "deterministic": False,
                "propagation_method": args.propagation,  # shipped: random_model
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            # overrides/pets_cartpole.yaml
            "overrides": {
                "env": "cartpole_continuous",
                "learned_rewards": False,
                "trial_length": 200,
                "num_steps": 5000,
                "num_elites": 5,
                "model_lr": 7.5e-4,
                "model_wd": 3e-5,
                "model_batch_size": 256,
                "validation_ratio": 0,
                "freq_train_model": 50,
                "patience": 25,
                "num_epochs_train_model": 25,
                "planning_horizon": 15,
                "cem_num_iters": 5,
                "cem_elite_ratio": 0.1,
                "cem_population_size": args.population_size,  # shipped: 350
                "cem_alpha": 0.1,
                "cem_clipped_normal": False,
            },
            # action_optimizer/cem.yaml (missing from the 0.2.0 wheel)
            "action_optimizer": {
                "_target_": "mbrl.planning.CEMOptimizer",
                "num_iterations": "${overrides.cem_num_iters}",
                "elite_ratio": "${overrides.cem_elite_ratio}",
                "population_size": "${overrides.cem_population_size}",
                "alpha": "${overrides.cem_alpha}",
                "lower_bound": "???",
                "upper_bound": "???",
                "return_mean_elites": True,
                "device": "${device}",
                "clipped_normal": "${overrides.cem_clipped_normal}",
            },
        }
    )


def mlp_macs(in_size: int, hid_size: int, num_layers: int, out_size: int) -> int:
    """Multiply-accumulates of one ``GaussianMLP`` member on one row (mean and log-variance head)."""
    return in_size * hid_size + (num_layers - 1) * hid_size * hid_size + hid_size * 2 * out_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--warmup", type=int, default=3, help="untimed planning steps first")
    parser.add_argument("--iters", type=int, default=10, help="timed planning steps")
    parser.add_argument("--population-size", type=int, default=500)
    parser.add_argument(
        "--propagation",
        choices=("fixed_model", "random_model", "expectation"),
        default="fixed_model",
        help="fixed_model = TSinf, random_model = TS1 (the shipped cart-pole default)",
    )
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--normalizer-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print one JSON result line")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = build_cfg(args)

    env = mbrl.env.cartpole_continuous.CartPoleEnv()
    env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    rng = np.random.default_rng(seed=args.seed)
    generator = torch.Generator(device=cfg.device)
    generator.manual_seed(args.seed)

    # As in mbrl.algorithms.pets.train: model, replay buffer of random transitions, model env.
    dynamics_model = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    dtype = np.double if cfg.algorithm.normalize_double_precision else np.float32
    replay_buffer = mbrl.util.common.create_replay_buffer(
        cfg, obs_shape, act_shape, rng=rng, obs_type=dtype, action_type=dtype, reward_type=dtype
    )
    mbrl.util.common.rollout_agent_trajectories(
        env,
        args.normalizer_steps,
        mbrl.planning.RandomAgent(env),
        {},
        replay_buffer=replay_buffer,
    )
    dynamics_model.update_normalizer(replay_buffer.get_all())
    dynamics_model.set_elite(range(cfg.overrides.num_elites))  # what ModelTrainer leaves behind
    model_env = mbrl.models.ModelEnv(
        env,
        dynamics_model,
        mbrl.env.termination_fns.cartpole,
        mbrl.env.reward_fns.cartpole,
        generator=generator,
    )
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(
        model_env, cfg.algorithm.agent, num_particles=cfg.algorithm.num_particles
    )

    obs, _ = env.reset()
    agent.reset()
    times: list[float] = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        action = agent.act(obs)
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
            agent.reset()

    mcfg, ocfg = cfg.dynamics_model, cfg.overrides
    rows = ocfg.cem_population_size * cfg.algorithm.num_particles
    model_steps = ocfg.planning_horizon * ocfg.cem_num_iters
    macs = mlp_macs(mcfg.in_size, mcfg.hid_size, mcfg.num_layers, mcfg.out_size)
    gflop = 2 * macs * rows * model_steps / 1e9
    median, mean = statistics.median(times), statistics.fmean(times)
    result: dict[str, Any] = {
        "library": f"mbrl-lib {mbrl.__version__}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "population": ocfg.cem_population_size,
        "particles": cfg.algorithm.num_particles,
        "horizon": ocfg.planning_horizon,
        "iterations": ocfg.cem_num_iters,
        "propagation": mcfg.propagation_method,
        "elites": len(dynamics_model.model.elite_models or range(mcfg.ensemble_size)),
        "gflop_per_step": round(gflop, 2),
        "median_s": round(median, 4),
        "mean_s": round(mean, 4),
        "min_s": round(min(times), 4),
        "gflops_median": round(gflop / median, 1),
        "gflops_mean": round(gflop / mean, 1),
    }

    print(
        f"mbrl-lib {mbrl.__version__} PETS/CEM planning step on cartpole_continuous "
        f"({platform.processor() or platform.machine()}, CPU)"
    )
    print(
        f"  torch {torch.__version__}, threads {result['threads']}, "
        f"GLIBC_TUNABLES={result['glibc_tunables'] or '(unset)'}, "
        f"load avg (1 min) at end {result['loadavg_1m']}"
    )
    print(
        f"  CEM population {result['population']} x {result['particles']} particles, horizon "
        f"{result['horizon']}, {result['iterations']} iterations; GaussianMLP "
        f"{mcfg.ensemble_size} members ({result['elites']} elites) x {mcfg.num_layers}x"
        f"{mcfg.hid_size}, in {mcfg.in_size} out {mcfg.out_size}, {result['propagation']}"
    )
    print(
        f"  model FLOPs per planning step: {rows} rows x {model_steps} steps x 2 x {macs} MACs "
        f"= {gflop:.1f} GFLOP"
    )
    print(
        f"  per planning step over {len(times)} calls ({args.warmup} warm-up): "
        f"median {median:.3f} s, mean {mean:.3f} s, min {min(times):.3f} s  ->  "
        f"{gflop / median:.1f} GFLOP/s (median), {gflop / mean:.1f} GFLOP/s (mean)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
