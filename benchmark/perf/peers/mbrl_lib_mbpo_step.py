"""Time one MBPO env step at steady state in the peer library mbrl-lib 0.2.0, phase by phase.

Runs in mbrl-lib's own virtual environment (see ``README.md`` here), never in the project's::

    /tmp/peers/mbrl-lib/bin/python benchmark/perf/peers/mbrl_lib_mbpo_step.py --threads 2
    /tmp/peers/mbrl-lib/bin/python benchmark/perf/peers/mbrl_lib_mbpo_step.py --task hopper --threads 2
    # quick check: --init-steps 1000 --steps 50 --threads 1

What runs is the body of ``mbrl.algorithms.mbpo.train``'s env-step loop, made of mbrl-lib's own
objects and helpers (nothing vendored): the env from ``mbrl.util.create_handler(cfg).make_env``
(gymnasium 0.26.3 ``InvertedPendulum-v4`` / ``Hopper-v4``, MuJoCo 2.3.3) with the termination
function ``mbrl.env.termination_fns.<task>`` and learned rewards; the model from
``create_one_dim_tr_model`` (a ``GaussianMLP`` ensemble in a ``OneDTransitionRewardModel``:
delta targets, double-precision input normalizer, ``random_model`` propagation over the elites);
a ``ModelTrainer``; a ``ModelEnv``; ``mbrl.util.ReplayBuffer`` for real data (from
``create_replay_buffer``) and for model data (from ``mbpo.maybe_replace_sac_buffer``); the
``pytorch_sac_pranz24`` SAC agent in a ``SACAgent``. Per env step, as in ``mbpo.train``:

1. ``step_env_and_add_to_buffer`` with the SAC policy's mean action (reset on termination,
   truncation or epoch start);
2. every ``freq_train_model`` steps ``train_model_and_save_model_and_data`` (split 80/20, refit
   the normalizer, ``ModelTrainer.train`` until ``patience`` epochs without a 1 % improvement)
   and ``mbpo.rollout_model_and_populate_sac_buffer`` (one batch of
   ``rollouts_per_step * freq_train_model`` starts, ``rollout_length`` model steps, SAC actions
   sampled);
3. ``G`` calls of ``SAC.update_parameters`` on a batch from the real buffer with probability
   ``real_data_ratio``, else from the model buffer, with a ``mbrl.util.Logger`` as mbpo passes.

Sequence: ``--init-steps`` uniform random env steps into the real buffer (``RandomAgent``, i.e.
``random_initial_explore=True``), a warm-up model training from scratch, as many warm-up
rollouts as the model buffer holds (one epoch's worth), ``G`` warm-up SAC updates; then a timed
window of ``--steps`` env steps, aligned so that its last step is a model-training step (as in
mbpo, where training fires when ``(env_steps + 1) % freq_train_model == 0``). Model training and
rollouts are amortized per event: their mean time per call divided by ``freq_train_model``, so a
short window still gives per-step figures (with ``--steps 250`` this is the window's own total).

Configuration: the composition of mbrl-lib's ``examples/conf/main.yaml`` +
``algorithm/mbpo.yaml`` + ``dynamics_model/gaussian_mlp_ensemble.yaml`` +
``overrides/mbpo_inv_pendulum.yaml`` or ``overrides/mbpo_hopper.yaml`` (copies ship in the
wheel under ``mbrl/examples/conf``), built here, device CPU. To match our own MBPO the defaults
differ from the shipped files in four places, the first three of them flags:
``learn_logvar_bounds`` True (shipped False), ``real_data_ratio`` 0.05 (shipped 0.0), the SAC
``target_entropy`` -0.05 on inverted_pendulum (shipped -1), and random initial exploration
(shipped: the untrained SAC agent; this only changes which data the buffer starts with). The
agent config's ``action_space`` (shipped ``_target_: gym.env.Box``; there is no gym here, and
gymnasium 0.26's ``Box`` rejects list bounds) is replaced by the env's own action space.

The SAC row includes what ``update_parameters`` does besides the nets (buffer sampling, tensor
conversion, ``Logger.log`` calls); ms per single update and GFLOP/s come from the same time,
with the matmul FLOP count of ``sac_update_macs`` below. Peak RSS is ``ru_maxrss`` at the end.
The policy is untrained, so InvertedPendulum episodes end after a few steps and the env row
includes more resets than late in a run (cheap next to the other rows).

Not timed (outside the per-step cost being compared): the evaluation episode mbpo runs at the
end of every epoch, and the model/buffer checkpoint ``train_model_and_save_model_and_data``
writes to ``work_dir`` after each training (``--save-model`` times it as an extra row).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import tempfile
import time
import warnings
from typing import Any

import hydra.utils
import mbrl
import mbrl.algorithms.mbpo as mbpo
import mbrl.models
import mbrl.planning
import mbrl.planning.sac_wrapper
import mbrl.util
import mbrl.util.common
import mbrl.util.math
import numpy as np
import omegaconf
import torch

# Per-task defaults. inverted_pendulum: overrides/mbpo_inv_pendulum.yaml except target_entropy;
# hopper: overrides/mbpo_hopper.yaml as shipped. Algorithm-level values are in ALGO_DEFAULTS.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "inverted_pendulum": {
        "env": "gym___InvertedPendulum-v4",
        "term_fn": "inverted_pendulum",
        "num_steps": 20000,
        "epoch_length": 250,
        "rollout_schedule": [1, 15, 1, 1],
        "sac_updates_per_step": 10,
        "sac_target_update_interval": 1,
        "sac_auto_entropy": True,
        "sac_target_entropy": -0.05,  # shipped: -1
        "sac_hidden": 256,
    },
    "hopper": {
        "env": "gym___Hopper-v4",
        "term_fn": "hopper",
        "num_steps": 125000,
        "epoch_length": 1000,
        "rollout_schedule": [20, 150, 1, 15],
        "sac_updates_per_step": 40,
        "sac_target_update_interval": 4,
        "sac_auto_entropy": False,
        "sac_target_entropy": 1.0,  # ignored, since entropy tuning is off (as shipped)
        "sac_hidden": 512,
    },
}
# Shared by both shipped overrides (and algorithm/mbpo.yaml, gaussian_mlp_ensemble.yaml).
ALGO_DEFAULTS: dict[str, Any] = {
    "num_elites": 5,
    "patience": 5,
    "model_lr": 1e-3,
    "model_wd": 1e-5,
    "model_batch": 256,
    "validation_ratio": 0.2,
    "freq_train_model": 250,
    "rollouts_per_step": 400,
    "num_epochs_to_retain_sac_buffer": 1,
    "sac_gamma": 0.99,
    "sac_tau": 0.005,
    "sac_alpha": 0.2,
    "sac_lr": 3e-4,
    "sac_batch": 256,
    "real_data_ratio": 0.05,  # shipped algorithm/mbpo.yaml: 0.0
    "ensemble_size": 7,
    "model_layers": 4,
    "model_hidden": 200,
    "learn_logvar_bounds": True,  # shipped gaussian_mlp_ensemble.yaml: False
}


def build_cfg(args: argparse.Namespace) -> omegaconf.DictConfig:
    """The config ``mbrl/examples/main.py`` would compose for MBPO on the task (CPU)."""
    return omegaconf.OmegaConf.create(
        {
            "seed": args.seed,
            "device": "cpu",
            "debug_mode": False,
            # algorithm/mbpo.yaml
            "algorithm": {
                "name": "mbpo",
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "learned_rewards": True,
                "freq_train_model": "${overrides.freq_train_model}",
                "real_data_ratio": args.real_data_ratio,
                "sac_samples_action": True,
                "initial_exploration_steps": args.init_steps,
                "random_initial_explore": True,  # shipped: false
                "num_eval_episodes": 1,
                "agent": {
                    "_target_": "mbrl.third_party.pytorch_sac_pranz24.sac.SAC",
                    "num_inputs": "???",
                    # shipped: gym.env.Box; main() passes env.action_space in its place
                    "action_space": {
                        "_target_": "gymnasium.spaces.Box",
                        "low": "???",
                        "high": "???",
                        "shape": "???",
                    },
                    "args": {
                        "gamma": "${overrides.sac_gamma}",
                        "tau": "${overrides.sac_tau}",
                        "alpha": "${overrides.sac_alpha}",
                        "policy": "${overrides.sac_policy}",
                        "target_update_interval": "${overrides.sac_target_update_interval}",
                        "automatic_entropy_tuning": "${overrides.sac_automatic_entropy_tuning}",
                        "target_entropy": "${overrides.sac_target_entropy}",
                        "hidden_size": "${overrides.sac_hidden_size}",
                        "device": "${device}",
                        "lr": "${overrides.sac_lr}",
                    },
                },
            },
            # dynamics_model/gaussian_mlp_ensemble.yaml
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "_recursive_": False,  # GaussianMLP builds activation_fn_cfg itself (hydra 1.0)
                "device": "${device}",
                "num_layers": args.model_layers,
                "in_size": "???",
                "out_size": "???",
                "ensemble_size": args.ensemble_size,
                "hid_size": args.model_hidden,
                "deterministic": False,
                "propagation_method": "random_model",
                "learn_logvar_bounds": args.learn_logvar_bounds,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            # overrides/mbpo_inv_pendulum.yaml or overrides/mbpo_hopper.yaml
            "overrides": {
                "env": args.env,
                "term_fn": args.term_fn,
                "num_steps": args.num_steps,
                "epoch_length": args.epoch_length,
                "num_elites": args.num_elites,
                "patience": args.patience,
                "model_lr": args.model_lr,
                "model_wd": args.model_wd,
                "model_batch_size": args.model_batch,
                "validation_ratio": args.validation_ratio,
                "freq_train_model": args.freq_train_model,
                "effective_model_rollouts_per_step": args.rollouts_per_step,
                "rollout_schedule": list(args.rollout_schedule),
                "num_sac_updates_per_step": args.sac_updates_per_step,
                "sac_updates_every_steps": 1,
                "num_epochs_to_retain_sac_buffer": args.num_epochs_to_retain_sac_buffer,
                "sac_gamma": args.sac_gamma,
                "sac_tau": args.sac_tau,
                "sac_alpha": args.sac_alpha,
                "sac_policy": "Gaussian",
                "sac_target_update_interval": args.sac_target_update_interval,
                "sac_automatic_entropy_tuning": args.sac_auto_entropy,
                "sac_hidden_size": args.sac_hidden,
                "sac_lr": args.sac_lr,
                "sac_batch_size": args.sac_batch,
                "sac_target_entropy": args.sac_target_entropy,
            },
        }
    )


def sac_update_macs(obs_dim: int, act_dim: int, hidden: int) -> int:
    """Multiply-accumulates of one ``SAC.update_parameters`` call, per batch row (matmuls only).

    pytorch_sac_pranz24 nets (2 hidden layers of width h): the actor ``GaussianPolicy`` is
    obs->h->h->(mean, log_std), A = obs*h + h*h + 2*h*act MACs per row; the twin critic
    ``QNetwork`` is two nets (obs+act)->h->h->1, C = 2*((obs+act)*h + h*h + h). One update does
      target: actor fwd on s' + target critic fwd (no grad)                 A + C
      critic loss: critic fwd on (s, a) + backward (about 2x the fwd)     3C
      policy loss: actor fwd + critic fwd on (s, pi) + backward through both  3A + 3C
    = 4A + 7C per row, so FLOPs per update = 2 * batch * (4A + 7C). Backward is counted as twice
    the forward (input and weight gradients; the first layer's input gradient is not needed, so
    this slightly overcounts). Adam steps, soft target updates, the entropy-temperature step and
    elementwise ops are not counted.
    """
    actor = obs_dim * hidden + hidden * hidden + 2 * hidden * act_dim
    critic = 2 * ((obs_dim + act_dim) * hidden + hidden * hidden + hidden)
    return 4 * actor + 7 * critic


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(TASK_DEFAULTS), default="inverted_pendulum")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--init-steps", type=int, default=5000, help="random env steps first")
    parser.add_argument(
        "--steps", type=int, default=250, help="timed env steps (250 = one model-training period)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epoch",
        type=int,
        default=0,
        help="mbpo epoch index the window is in (sets rollout length via the schedule)",
    )
    parser.add_argument(
        "--save-model", action="store_true", help="also time mbpo's model/buffer save per training"
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON result line")
    hp = parser.add_argument_group("hyperparameters (default: per --task, see TASK_DEFAULTS)")
    hp.add_argument("--sac-hidden", type=int)
    hp.add_argument("--sac-batch", type=int)
    hp.add_argument("--sac-updates-per-step", "-G", type=int, help="G: SAC updates per env step")
    hp.add_argument("--sac-lr", type=float)
    hp.add_argument("--sac-gamma", type=float)
    hp.add_argument("--sac-tau", type=float)
    hp.add_argument("--sac-alpha", type=float, help="initial/fixed entropy temperature")
    hp.add_argument("--sac-auto-entropy", action=argparse.BooleanOptionalAction)
    hp.add_argument("--sac-target-entropy", type=float)
    hp.add_argument("--sac-target-update-interval", type=int)
    hp.add_argument("--ensemble-size", type=int)
    hp.add_argument("--num-elites", type=int)
    hp.add_argument("--model-layers", type=int, help="hidden layers of the GaussianMLP")
    hp.add_argument("--model-hidden", type=int)
    hp.add_argument("--learn-logvar-bounds", action=argparse.BooleanOptionalAction)
    hp.add_argument("--model-lr", type=float)
    hp.add_argument("--model-wd", type=float, help="Adam weight decay of the model")
    hp.add_argument("--model-batch", type=int, help="per-member model batch size")
    hp.add_argument("--validation-ratio", type=float)
    hp.add_argument("--patience", type=int)
    hp.add_argument("--freq-train-model", type=int)
    hp.add_argument("--rollouts-per-step", type=int, help="effective model rollouts per env step")
    hp.add_argument(
        "--rollout-schedule", type=int, nargs=4, metavar=("MIN_EPOCH", "MAX_EPOCH", "MIN", "MAX")
    )
    hp.add_argument("--epoch-length", type=int)
    hp.add_argument("--num-epochs-to-retain-sac-buffer", type=int)
    hp.add_argument("--real-data-ratio", type=float)
    hp.add_argument("--num-steps", type=int, help="real replay buffer capacity (mbpo num_steps)")
    args = parser.parse_args()
    for key, value in {**ALGO_DEFAULTS, **TASK_DEFAULTS[args.task]}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse_args()
    # gymnasium 0.26's env checker uses np.bool8, deprecated in numpy 1.24
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="gymnasium")
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)  # noqa: NPY002 (as mbrl/examples/main.py does)
    torch.manual_seed(args.seed)
    cfg = build_cfg(args)
    ocfg = cfg.overrides

    # As in mbrl/examples/main.py and mbrl.algorithms.mbpo.train (initialization).
    env, term_fn, _ = mbrl.util.create_handler(cfg).make_env(cfg)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    mbrl.planning.complete_agent_cfg(env, cfg.algorithm.agent)
    agent = mbrl.planning.sac_wrapper.SACAgent(
        hydra.utils.instantiate(cfg.algorithm.agent, action_space=env.action_space)
    )
    sac = agent.sac_agent
    log_dir = tempfile.TemporaryDirectory(prefix="mbrl_lib_mbpo_")
    logger = mbrl.util.Logger(log_dir.name, enable_back_compatible=True)

    rng = np.random.default_rng(seed=cfg.seed)
    torch_generator = torch.Generator(device=cfg.device)
    torch_generator.manual_seed(cfg.seed)
    dynamics_model = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    replay_buffer = mbrl.util.common.create_replay_buffer(
        cfg,
        obs_shape,
        act_shape,
        rng=rng,
        obs_type=np.double,  # normalize_double_precision: true
        action_type=np.double,
        reward_type=np.double,
    )
    mbrl.util.common.rollout_agent_trajectories(
        env,
        cfg.algorithm.initial_exploration_steps,
        mbrl.planning.RandomAgent(env),
        {},
        replay_buffer=replay_buffer,
    )

    rollout_batch_size = ocfg.effective_model_rollouts_per_step * cfg.algorithm.freq_train_model
    trains_per_epoch = int(np.ceil(ocfg.epoch_length / ocfg.freq_train_model))
    model_env = mbrl.models.ModelEnv(env, dynamics_model, term_fn, None, generator=torch_generator)
    model_trainer = mbrl.models.ModelTrainer(
        dynamics_model, optim_lr=ocfg.model_lr, weight_decay=ocfg.model_wd, logger=None
    )  # logger=None: as mbpo.train(silent=True); it only adds a CSV row per epoch
    rollout_length = int(mbrl.util.math.truncated_linear(*ocfg.rollout_schedule, args.epoch + 1))
    sac_buffer_capacity = rollout_length * rollout_batch_size * trains_per_epoch
    sac_buffer_capacity *= ocfg.num_epochs_to_retain_sac_buffer
    sac_buffer = mbpo.maybe_replace_sac_buffer(
        None, obs_shape, act_shape, sac_buffer_capacity, cfg.seed
    )

    train_epochs: list[int] = []  # epochs run by each ModelTrainer.train call

    def count_epoch(*_args: Any) -> None:
        train_epochs[-1] += 1

    def train_model() -> float:
        train_epochs.append(0)
        t0 = time.perf_counter()
        mbrl.util.common.train_model_and_save_model_and_data(
            dynamics_model, model_trainer, ocfg, replay_buffer, work_dir=None, callback=count_epoch
        )
        return time.perf_counter() - t0

    def rollout() -> float:
        t0 = time.perf_counter()
        mbpo.rollout_model_and_populate_sac_buffer(
            model_env,
            replay_buffer,
            agent,
            sac_buffer,
            cfg.algorithm.sac_samples_action,
            rollout_length,
            rollout_batch_size,
        )
        return time.perf_counter() - t0

    updates_made = 0

    def sac_updates(count: int) -> int:
        nonlocal updates_made
        done = 0
        for _ in range(count):
            use_real_data = rng.random() < cfg.algorithm.real_data_ratio
            which_buffer = replay_buffer if use_real_data else sac_buffer
            if len(which_buffer) < ocfg.sac_batch_size:
                break
            sac.update_parameters(
                which_buffer, ocfg.sac_batch_size, updates_made, logger, reverse_mask=True
            )
            updates_made += 1
            done += 1
        return done

    # Warm-up: first model training (from scratch), fill the model buffer, a few SAC updates.
    warm_train_s = train_model()
    warm_rollouts = trains_per_epoch * ocfg.num_epochs_to_retain_sac_buffer
    for _ in range(warm_rollouts):
        rollout()
    sac_updates(ocfg.num_sac_updates_per_step)

    # Timed window: the loop body of mbpo.train, per env step.
    freq, g = ocfg.freq_train_model, ocfg.num_sac_updates_per_step
    offset = (-args.steps) % freq  # so that the window's last step trains the model
    t_env = t_sac = 0.0
    train_times: list[float] = []
    rollout_times: list[float] = []
    save_times: list[float] = []
    n_updates = 0
    obs, terminated, truncated = None, False, False
    t_window = time.perf_counter()
    for i in range(args.steps):
        env_steps = offset + i
        t0 = time.perf_counter()
        if i == 0 or env_steps % ocfg.epoch_length == 0 or terminated or truncated:
            obs, _ = env.reset()
        next_obs, _, terminated, truncated, _ = mbrl.util.common.step_env_and_add_to_buffer(
            env, obs, agent, {}, replay_buffer
        )
        t_env += time.perf_counter() - t0

        if (env_steps + 1) % freq == 0:
            train_times.append(train_model())
            if args.save_model:
                t0 = time.perf_counter()
                dynamics_model.save(log_dir.name)
                replay_buffer.save(log_dir.name)
                save_times.append(time.perf_counter() - t0)
            rollout_times.append(rollout())

        t0 = time.perf_counter()
        if (env_steps + 1) % ocfg.sac_updates_every_steps == 0:
            n_updates += sac_updates(g)
        t_sac += time.perf_counter() - t0
        obs = next_obs
    window_s = time.perf_counter() - t_window
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    steps = args.steps
    ms = {
        "env step + policy action": 1e3 * t_env / steps,
        f"model training (1 per {freq} steps, amortized)": 1e3 * float(np.mean(train_times)) / freq,
        f"model rollouts ({rollout_batch_size} x {rollout_length} per {freq} steps, amortized)": (
            1e3 * float(np.mean(rollout_times)) / freq
        ),
        f"SAC updates (G={g} per step)": 1e3 * t_sac / steps,
    }
    if save_times:
        ms[f"model + buffer save (1 per {freq} steps, amortized)"] = (
            1e3 * float(np.mean(save_times)) / freq
        )
    total_ms = sum(ms.values())
    sac_ms_each = 1e3 * t_sac / max(n_updates, 1)
    macs = sac_update_macs(obs_shape[0], act_shape[0], ocfg.sac_hidden_size)
    gflop_per_update = 2 * ocfg.sac_batch_size * macs / 1e9
    sac_gflops = gflop_per_update / (sac_ms_each / 1e3) if n_updates else math.nan
    mcfg = cfg.dynamics_model

    print(
        f"mbrl-lib {mbrl.__version__} MBPO env step on {ocfg.env.split('___')[-1]} "
        f"({platform.processor() or platform.machine()}, CPU)"
    )
    print(
        f"  torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES') or '(unset)'}, "
        f"load avg (1 min) at end {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  SAC {ocfg.sac_hidden_size}x2, batch {ocfg.sac_batch_size}, G={g}, lr {ocfg.sac_lr}, "
        f"gamma {ocfg.sac_gamma}, tau {ocfg.sac_tau}, target update every "
        f"{ocfg.sac_target_update_interval}, "
        + (
            f"auto entropy (target {ocfg.sac_target_entropy})"
            if ocfg.sac_automatic_entropy_tuning
            else f"fixed alpha {ocfg.sac_alpha}"
        )
        + f", real-data ratio {cfg.algorithm.real_data_ratio}"
    )
    print(
        f"  GaussianMLP {mcfg.ensemble_size} members ({ocfg.num_elites} elites) x "
        f"{mcfg.num_layers}x{mcfg.hid_size} SiLU, in {mcfg.in_size} out {mcfg.out_size}, "
        f"learned logvar bounds {mcfg.learn_logvar_bounds}; Adam lr {ocfg.model_lr} wd "
        f"{ocfg.model_wd}, batch {ocfg.model_batch_size}/member, validation "
        f"{ocfg.validation_ratio}, patience {ocfg.patience}"
    )
    print(
        f"  model trained every {freq} steps; rollouts {ocfg.effective_model_rollouts_per_step}"
        f"/step as {rollout_batch_size} x length {rollout_length} (epoch {args.epoch}, schedule "
        f"{list(ocfg.rollout_schedule)}); model buffer {sac_buffer_capacity}, real buffer "
        f"{len(replay_buffer)} / {ocfg.num_steps}"
    )
    print(
        f"  {args.init_steps} random steps, warm-up model training {warm_train_s:.1f} s "
        f"({train_epochs[0]} epochs), {warm_rollouts} warm-up rollout(s); timed {steps} env "
        f"steps with model training(s) inside of "
        + ", ".join(
            f"{t:.2f} s ({n} epochs)" for t, n in zip(train_times, train_epochs[1:], strict=True)
        )
    )
    print()
    width = max(len(k) for k in ms) + 2
    print(f"  {'phase':<{width}}{'ms / env step':>14}{'share':>9}")
    for name, value in ms.items():
        print(f"  {name:<{width}}{value:>14.2f}{100 * value / total_ms:>8.1f}%")
    print(f"  {'total':<{width}}{total_ms:>14.2f}{100.0:>8.1f}%")
    print()
    print(
        f"  window wall time {1e3 * window_s / steps:.2f} ms / env step "
        f"({steps} steps, {len(train_times)} training event(s) inside, not amortized)"
    )
    print(
        f"  SAC: {n_updates} updates, {sac_ms_each:.2f} ms each, {gflop_per_update * 1e3:.0f} "
        f"MFLOP each (2 x batch x (4 actor + 7 twin-critic) MACs/row) -> {sac_gflops:.1f} GFLOP/s"
    )
    print(f"  peak RSS {peak_rss_mib:.0f} MiB")

    if args.json:
        result: dict[str, Any] = {
            "library": f"mbrl-lib {mbrl.__version__}",
            "task": args.task,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "init_steps": args.init_steps,
            "steps": steps,
            "ms_per_env_step": {k: round(v, 3) for k, v in ms.items()},
            "total_ms": round(total_ms, 3),
            "window_ms_per_step": round(1e3 * window_s / steps, 3),
            "model_train_s": [round(t, 3) for t in train_times],
            "model_train_epochs": train_epochs[1:],
            "sac_ms_per_update": round(sac_ms_each, 3),
            "sac_gflops": round(sac_gflops, 1),
            "peak_rss_mib": round(peak_rss_mib),
        }
        print(json.dumps(result))
    log_dir.cleanup()


if __name__ == "__main__":
    main()
