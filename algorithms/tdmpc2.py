"""``tdmpc2``: TD-MPC2 (Hansen, Su, Wang 2024, "TD-MPC2: Scalable, Robust World Models for
Continuous Control"), faithful to nicklashansen/tdmpc2 (``tdmpc2/tdmpc2.py``,
``trainer/online_trainer.py``, ``config.yaml``), without ``torch.compile`` and on any device.

The model (:class:`~algorithms.models.world_model.WorldModel`) is value-equivalent: it is
trained only through latent consistency, reward, value (and termination) losses on
subsequences of ``H + 1`` real steps, never to reconstruct observations. Per env step:

1. act: MPPI in latent space (the suite's :class:`~algorithms.planners.optimizers.EliteMPPI`
   over :class:`~algorithms.planners.models.LatentModel`'s objective), ``num_pi_trajs`` of the
   policy prior's own trajectories among the candidates of every iteration, the executed action
   an elite drawn by its weight plus the final std as noise in training; or the policy prior
   alone (``mpc=false``). The first ``seed_steps`` steps are uniform random.
2. update (one per env step, UTD 1): at ``seed_steps``, as many updates as seed steps at once
   (the reference code's pretraining), then one per step:
   ``20 * consistency + 0.1 * reward CE + 0.1 * value CE (+ termination BCE)``, each term a
   ``rho^t``-weighted sum over the horizon; TD targets ``r + gamma (1 - term) min Q_target(z',
   pi(z'))`` over two random target heads, ``z'`` from the online encoder; then the policy prior
   on the detached latents, maximising ``Q / S + 1e-4 * scaled entropy`` (``S`` the running 5-95
   percentile range of ``Q``); then Polyak averaging of the target Qs.

Actions: the agent works in ``[-1, 1]`` (the reference code's action space) and maps linearly to
the task's bounds.

Diagnostics at every evaluation (the value-equivalence probe): on the evaluation episodes just
played (held out: never trained on), from every real state the latent is rolled open-loop with
the real actions, and for ``k`` in ``probe_horizons``: ``ve_latent_err_h{k}`` (the consistency
error against the encoding of the real state ``k`` steps later, per latent dim),
``ve_reward_err_h{k}`` (absolute error of the ``k``-th step's predicted reward) and
``ve_value_err_h{k}`` (absolute difference of the value ``Q(z, pi_mean(z))``, all heads averaged,
between the rolled latent and the encoded real state).

Also logged: the update's losses (``consistency_loss``, ``reward_loss``, ``value_loss``,
``termination_loss``, ``reconstruction_loss``), ``grad_norm``, ``pi_loss``, ``pi_entropy``,
``pi_scale`` (the running Q scale ``S``), averaged between evaluations by the driver, and
``plan_return`` (the best predicted return of the plans since the previous evaluation, training
and evaluation steps).

The value-equivalence ablation: ``reconstruction_coef > 0`` adds an observation decoder and its
``rho^t``-weighted MSE to the model loss (what TD-MPC2 leaves out).

Results and timings: docs/algorithms/tdmpc2.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    ConfigError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    Range,
    RunContext,
    Transition,
)
from algorithms.models.twohot import TwoHot
from algorithms.models.world_model import MODEL_SIZES, RunningScale, WorldModel, WorldModelShape
from algorithms.planners.models import LatentModel
from algorithms.planners.optimizers import EliteMPPI, EliteMPPIConfig
from algorithms.replay.sequence import SequenceReplay
from envs.spec import TaskSpec


@dataclass(frozen=True)
class TDMPC2Config(AlgoConfig):
    """TD-MPC2's hyperparameters: nicklashansen/tdmpc2 ``tdmpc2/config.yaml`` unless a field
    says otherwise; sizes from ``common/__init__.py`` ``MODEL_SIZE``."""

    # ---------------------------------------------------------------- architecture
    model_size: Annotated[int, Range(ge=1)] = 1
    """One of 1, 5, 19, 48, 317 (millions of parameters). The code's default is 5; 1 here so a
    CPU seed fits a session (``model_size=5`` is the paper's single-task form)."""
    enc_dim: PositiveInt | None = None
    """Encoder width (``None``: from ``model_size``; 256 at 1 and 5)."""
    mlp_dim: PositiveInt | None = None
    """Width of every other MLP (``None``: from ``model_size``; 384 at 1, 512 at 5)."""
    latent_dim: PositiveInt | None = None
    """Latent size, a multiple of ``simnorm_dim`` (``None``: from ``model_size``; 128 at 1, 512
    at 5)."""
    num_enc_layers: PositiveInt | None = None
    """Encoder layers (``None``: from ``model_size``; 2 at 1 and 5)."""
    num_q: Annotated[int, Range(ge=2)] | None = None
    """Q heads (``None``: from ``model_size``; 2 at 1, 5 at 5)."""
    simnorm_dim: PositiveInt = 8
    """SimNorm group size (``simnorm_dim: 8``)."""
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.01
    """Dropout after the first layer of every Q head (``dropout: 0.01``)."""
    num_bins: Annotated[int, Range(ge=2)] = 101
    """Support points of the two-hot reward and value heads (``num_bins: 101``)."""
    vmin: float = -10.0
    """Lower end of the support, in symlog space (``vmin: -10``)."""
    vmax: float = 10.0
    """Upper end (``vmax: +10``)."""
    log_std_min: float = -10.0
    """Policy prior's log-std range, lower end (``log_std_min: -10``)."""
    log_std_max: float = 2.0
    """Upper end (``log_std_max: 2``)."""
    episodic: bool = False
    """Learn a termination head, stop bootstrapping at predicted terminals (``episodic: false``
    by default in the code; set it on tasks that terminate, as the code's users must)."""
    reconstruction_coef: NonNegativeFloat = 0.0
    """The value-equivalence ablation (not in TD-MPC2): > 0 adds an observation decoder and
    this weight on its ``rho^t``-weighted MSE. 0: the paper's form."""

    # ---------------------------------------------------------------- training
    batch_size: PositiveInt = 256
    """Subsequences per update (``batch_size: 256``)."""
    buffer_size: PositiveInt = 1_000_000
    """Replay capacity (``buffer_size: 1_000_000``), capped at the step budget."""
    lr: PositiveFloat = 3e-4
    """Adam learning rate of the model and the policy (``lr: 3e-4``)."""
    enc_lr_scale: PositiveFloat = 0.3
    """Factor on the encoder's learning rate (``enc_lr_scale: 0.3``)."""
    grad_clip_norm: PositiveFloat = 20.0
    """Gradient-norm clip of the model and of the policy (``grad_clip_norm: 20``)."""
    consistency_coef: NonNegativeFloat = 20.0
    """Weight of the latent consistency loss (``consistency_coef: 20``)."""
    reward_coef: NonNegativeFloat = 0.1
    """Weight of the reward cross-entropy (``reward_coef: 0.1``)."""
    value_coef: NonNegativeFloat = 0.1
    """Weight of the value cross-entropy (``value_coef: 0.1``)."""
    termination_coef: NonNegativeFloat = 1.0
    """Weight of the termination BCE, episodic only (``termination_coef: 1``)."""
    rho: PositiveFraction = 0.5
    """Temporal weight ``rho^t`` of every loss term (``rho: 0.5``; the code's gym MuJoCo tasks
    use 0.7, ``envs/mujoco.py``)."""
    tau: PositiveFraction = 0.01
    """Polyak rate of the target Qs and of the value scale (``tau: 0.01``)."""
    entropy_coef: NonNegativeFloat = 1e-4
    """Weight of the policy prior's action-dim-scaled entropy (``entropy_coef: 1e-4``)."""
    seed_steps: NonNegativeInt | None = None
    """Uniform random steps before learning, then as many updates at once. ``None``: the
    code's ``max(1000, 5 * episode_length)``."""
    discount: PositiveFraction | None = None
    """``None``: the code's heuristic ``clip((L/d - 1) / (L/d), discount_min, discount_max)``
    of the episode length ``L`` (``d = discount_denom``)."""
    discount_denom: PositiveFloat = 5.0
    """``discount_denom: 5``."""
    discount_min: PositiveFraction = 0.95
    """``discount_min: 0.95``."""
    discount_max: PositiveFraction = 0.995
    """``discount_max: 0.995`` (the code's gym MuJoCo tasks: 0.99)."""

    bf16: bool = False
    """Run the networks under bfloat16 autocast (updates and planning; losses and the MPPI
    statistics stay float32). Not in the code (it compiles fp32 on a GPU); the suite's CPU
    runs use it where the CPU multiplies bf16 natively, as for MBPO."""

    # ---------------------------------------------------------------- planning
    mpc: bool = True
    """Plan with MPPI (``mpc: true``); ``false``: act with the policy prior alone."""
    horizon: PositiveInt = 3
    """Planning horizon and training subsequence length ``H`` (``horizon: 3``)."""
    iterations: PositiveInt | None = None
    """MPPI iterations per env step. ``None``: the code's ``iterations: 6``, plus 2 when the
    action has 20 or more dims (``TDMPC2.__init__``)."""
    num_samples: PositiveInt = 512
    """Candidates per iteration, the policy's included (``num_samples: 512``)."""
    num_elites: PositiveInt = 64
    """Elites (``num_elites: 64``)."""
    num_pi_trajs: NonNegativeInt = 24
    """Policy-prior trajectories among the candidates (``num_pi_trajs: 24``)."""
    min_std: PositiveFloat = 0.05
    """Lower clamp of the MPPI std (``min_std: 0.05``)."""
    max_std: PositiveFloat = 2.0
    """Upper clamp and initial std (``max_std: 2``)."""
    temperature: PositiveFloat = 0.5
    """MPPI temperature (``temperature: 0.5``)."""

    # ---------------------------------------------------------------- diagnostics
    probe_horizons: tuple[PositiveInt, ...] = (1, 2, 3, 5, 10)
    """``k`` of the value-equivalence probe (``ve_*_err_h{k}``): the planning horizon and beyond
    (open loop)."""
    probe_capacity: PositiveInt = 10_000
    """Evaluation steps kept for the probe (the most recent)."""


class TDMPC2Agent(Algorithm):
    """The ``tdmpc2`` plugin (see the module docstring)."""

    name = "tdmpc2"
    Config = TDMPC2Config
    requires = frozenset({Capability.CONTINUOUS_ACTIONS})

    @classmethod
    def resolve_config(cls, task: TaskSpec, config: AlgoConfig) -> AlgoConfig:
        """Sizes from ``model_size``, ``seed_steps`` and ``discount`` from the episode length,
        two more MPPI iterations for 20+ action dims (tdmpc2's heuristics)."""
        assert isinstance(config, TDMPC2Config)
        if config.model_size not in MODEL_SIZES:
            raise ConfigError(
                f"tdmpc2: model_size must be one of {sorted(MODEL_SIZES)}, got "
                f"{config.model_size}; set tdmpc2.model_size=1 (CPU) or 5 (the paper's)"
            )
        size = MODEL_SIZES[config.model_size]
        fill = {k: v for k, v in size.items() if getattr(config, k) is None}
        length = int(task.max_episode_steps)
        if config.seed_steps is None:
            fill["seed_steps"] = max(1000, 5 * length)
        if config.discount is None:
            frac = length / config.discount_denom
            fill["discount"] = min(max((frac - 1) / frac, config.discount_min), config.discount_max)
        if config.iterations is None:
            fill["iterations"] = 6 + 2 * int(task.act_dim >= 20)
        return dataclasses.replace(config, **fill)

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        super().check_task(task, config)
        assert isinstance(config, TDMPC2Config)
        latent = config.latent_dim or MODEL_SIZES.get(config.model_size, {}).get("latent_dim", 0)
        if latent % config.simnorm_dim:
            raise ConfigError(
                f"tdmpc2: latent_dim {latent} must be a multiple of simnorm_dim "
                f"{config.simnorm_dim}; change one of them"
            )
        if not (config.vmin < config.vmax and config.log_std_min < config.log_std_max):
            raise ConfigError(
                f"tdmpc2: need vmin < vmax and log_std_min < log_std_max, got vmin={config.vmin}, "
                f"vmax={config.vmax}, log_std_min={config.log_std_min}, "
                f"log_std_max={config.log_std_max}; swap or widen them"
            )
        if config.num_elites > config.num_samples - config.num_pi_trajs:
            raise ConfigError(
                f"tdmpc2: num_elites {config.num_elites} exceeds the Gaussian samples "
                f"num_samples - num_pi_trajs = {config.num_samples - config.num_pi_trajs}; "
                "lower num_elites or raise num_samples"
            )

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        config = self.resolve_config(task, config)
        super().__init__(task, config, ctx)
        assert isinstance(config, TDMPC2Config)
        c, dev = config, ctx.device
        self.cfg = c
        self.twohot = TwoHot(c.num_bins, c.vmin, c.vmax)
        shape = WorldModelShape(
            obs_dim=task.obs_dim,
            act_dim=task.act_dim,
            enc_dim=c.enc_dim,  # type: ignore[arg-type]  (resolved above)
            mlp_dim=c.mlp_dim,  # type: ignore[arg-type]
            latent_dim=c.latent_dim,  # type: ignore[arg-type]
            num_enc_layers=c.num_enc_layers,  # type: ignore[arg-type]
            num_q=c.num_q,  # type: ignore[arg-type]
            simnorm_dim=c.simnorm_dim,
            dropout=c.dropout,
            log_std_min=c.log_std_min,
            log_std_max=c.log_std_max,
            episodic=c.episodic,
            decoder=c.reconstruction_coef > 0,
        )
        self.model = WorldModel(shape, self.twohot, ctx.torch_gen).to(dev).eval()
        groups = self.model.model_parameters()
        groups[0]["lr"] = c.lr * c.enc_lr_scale
        self.optim = torch.optim.Adam(groups, lr=c.lr)
        self.pi_optim = torch.optim.Adam(self.model._pi.parameters(), lr=c.lr, eps=1e-5)
        self.scale = RunningScale(c.tau).to(dev)
        self.discount: float = c.discount  # type: ignore[assignment]
        self.value_discount = self.discount
        # actions: env units <-> the model's [-1, 1]
        self._act_mid = (task.act_high + task.act_low) / 2
        self._act_half = (task.act_high - task.act_low) / 2
        self.replay = SequenceReplay.for_trial(c.buffer_size, task.obs_dim, task.act_dim, ctx)
        self.planning_model = LatentModel(
            self.model, gamma=self.discount, device=dev, ready=lambda: self.pretrained
        )
        unit = torch.ones(task.act_dim, device=dev)
        mppi = EliteMPPIConfig(
            population=c.num_samples - c.num_pi_trajs,
            elites=c.num_elites,
            iterations=c.iterations,  # type: ignore[arg-type]
            temperature=c.temperature,
            min_std=c.min_std,
            max_std=c.max_std,
        )
        self.optimizers = {
            explore: EliteMPPI(c.horizon, -unit, unit, mppi, generator=ctx.torch_gen)
            for explore in (True, False)
        }
        self.seed_steps = max(int(c.seed_steps), 1)  # type: ignore[arg-type]  (resolved above)
        self.rho = c.rho ** torch.arange(c.horizon + 1, device=dev, dtype=torch.float32)
        """``[H + 1]``: the temporal weights ``rho^t`` of every loss."""
        self.env_steps = 0
        self.pretrained = False
        self.probe = SequenceReplay(
            c.probe_capacity, task.obs_dim, task.act_dim, drop_partial=False
        )
        self._plan_return_sum, self._plan_count = 0.0, 0

    def autocast(self) -> Any:
        """bf16 autocast on the trial's device with ``bf16``, else a no-op."""
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    # ------------------------------------------------------------------ actions
    def to_model_action(self, action: np.ndarray) -> np.ndarray:
        """Env units -> ``[-1, 1]``."""
        return ((np.asarray(action, np.float32) - self._act_mid) / self._act_half).astype(
            np.float32
        )

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` -> env units, clipped to the bounds (the map is linear: the same as
        clipping to ``[-1, 1]`` first)."""
        a = self._act_mid + np.asarray(action) * self._act_half
        return np.clip(a, self.task.act_low, self.task.act_high).astype(np.float32)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Random during the seed steps, then MPPI (or the policy prior); ``[A]`` env units."""
        if explore and not self.pretrained:
            return self.random_action()
        c = self.cfg
        if not c.mpc:
            z = self.planning_model.encode(obs)
            a, info_pi = self.model.pi(z)
            a = a if explore else info_pi["mean"]
            return self.to_env_action(a[0].cpu().numpy())
        opt = self.optimizers[explore]
        props = None
        with self.autocast():
            if c.num_pi_trajs:
                props = self.planning_model.policy_rollouts(obs, c.num_pi_trajs, c.horizon)
            objective = self.planning_model.objective(obs, info)
            plan = opt.optimize(lambda actions: objective(actions).float(), props)
        a = plan[0]
        if explore:
            assert opt.last_std is not None
            noise = torch.randn(a.shape, generator=self.ctx.torch_gen).to(a.device)
            a = a + opt.last_std[0] * noise
        self._plan_return_sum += opt.last_info["plan_return"]
        self._plan_count += 1
        return self.to_env_action(a.cpu().numpy())

    def reset(self, *, explore: bool) -> None:
        self.optimizers[explore].reset()

    # ------------------------------------------------------------------ data
    def observe(self, transition: Transition) -> None:
        self.replay.add(transition._replace(action=self.to_model_action(transition.action)))
        self.env_steps += 1

    def observe_eval(self, transition: Transition) -> None:
        self.probe.add(transition._replace(action=self.to_model_action(transition.action)))

    # ------------------------------------------------------------------ learning
    def update(self) -> Mapping[str, float]:
        """Nothing during the seed steps; at ``seed_steps``, that many updates (the reference
        code's pretraining on the seed data); then one per env step."""
        if self.env_steps < self.seed_steps:
            return {}
        starts = self.replay.full_starts(self.cfg.horizon)  # the replay holds still below
        if not len(starts):
            return {}
        n = 1
        if not self.pretrained:
            n, self.pretrained = self.seed_steps, True
        metrics: dict[str, float] = {}
        for _ in range(n):
            metrics = self._update(starts)
        return metrics

    def _update(self, starts: np.ndarray) -> dict[str, float]:
        c = self.cfg
        b = self.replay.sample_full(
            c.batch_size, c.horizon, generator=self.ctx.np_rng, starts=starts
        )
        # [B, H, ...] -> [H, B, ...]
        obs0 = b.obs[:, 0]
        act = b.act.transpose(0, 1)
        reward = b.reward.transpose(0, 1)
        term = b.terminated.transpose(0, 1)
        next_obs = b.next_obs.transpose(0, 1)
        with self.autocast():
            return self._update_in(obs0, act, reward, term, next_obs)

    def _update_in(
        self,
        obs0: torch.Tensor,
        act: torch.Tensor,
        reward: torch.Tensor,
        term: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> dict[str, float]:
        c, m = self.cfg, self.model
        with torch.no_grad():
            next_z = m.encode(next_obs)
            a_next, _ = m.pi(next_z)
            q_next = m.q_value(next_z, a_next, reduce="min", target=True).squeeze(-1)
            td_target = reward + self.discount * (1 - term) * q_next  # [H, B]
        m.train()
        h = c.horizon
        rho, rho1 = self.rho[:h], self.rho  # over the H steps, over the H + 1 latents
        z = m.encode(obs0)
        zs = [z]
        consistency = obs0.new_zeros(())
        for t in range(h):  # the latent rollout is sequential in t
            z = m.next(z, act[t])
            consistency = consistency + rho[t] * F.mse_loss(z.float(), next_z[t].float())
            zs.append(z)
        z_all = torch.stack(zs)  # [H + 1, B, L]
        z_in = z_all[:-1]
        reward_ce = self.twohot.cross_entropy(m.reward(z_in, act), reward).mean(-1)  # [H]
        q_logits = m.Q(z_in, act)  # [num_q, H, B, bins]
        value_ce = self.twohot.cross_entropy(q_logits, td_target.expand_as(q_logits[..., 0]))
        consistency = consistency / h
        reward_loss = (rho * reward_ce).sum() / h
        # summed over heads and rho-weighted steps, / (H * num_q) (tdmpc2 ``_update``)
        value_loss = (rho * value_ce.mean(-1).sum(0)).sum() / (h * c.num_q)  # type: ignore[operator]
        total = (
            c.consistency_coef * consistency
            + c.reward_coef * reward_loss
            + c.value_coef * value_loss
        )
        out: dict[str, float] = {}
        if c.episodic:
            term_logits = m.termination(z_all[1:], logits=True).squeeze(-1)
            term_loss = F.binary_cross_entropy_with_logits(term_logits, term)
            total = total + c.termination_coef * term_loss
            out["termination_loss"] = float(term_loss.detach())
        if c.reconstruction_coef > 0:
            obs_seq = torch.cat([obs0.unsqueeze(0), next_obs], dim=0)  # [H + 1, B, O]
            rec = ((m.decode(z_all) - obs_seq) ** 2).mean(dim=(1, 2))
            rec_loss = (rho1 * rec).sum() / (h + 1)
            total = total + c.reconstruction_coef * rec_loss
            out["reconstruction_loss"] = float(rec_loss.detach())
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(m.parameters(), c.grad_clip_norm)
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)

        # policy prior on the detached latents, Q heads frozen (tdmpc2's ``detach`` Qs)
        zs_d = z_all.detach()
        m._Qs.requires_grad_(False)
        a, info = m.pi(zs_d)
        q = m.q_value(zs_d, a, reduce="avg")  # [H + 1, B, 1]
        self.scale.update(q[0])
        q = self.scale(q)
        pi_loss = (-(c.entropy_coef * info["scaled_entropy"] + q).mean(dim=(1, 2)) * rho1).mean()
        pi_loss.backward()
        torch.nn.utils.clip_grad_norm_(m._pi.parameters(), c.grad_clip_norm)
        self.pi_optim.step()
        # no gradient outlives its step: the model's clip sees only its own (tdmpc2 order)
        self.pi_optim.zero_grad(set_to_none=True)
        m._Qs.requires_grad_(True)
        m.soft_update_target_Q(c.tau)
        m.eval()
        out.update(
            consistency_loss=float(consistency.detach()),
            reward_loss=float(reward_loss.detach()),
            value_loss=float(value_loss.detach()),
            total_loss=float(total.detach()),
            grad_norm=float(grad_norm),
            pi_loss=float(pi_loss.detach()),
            pi_scale=float(self.scale.value),
            pi_entropy=float(-info["log_prob"].detach().mean()),
        )
        return out

    # ------------------------------------------------------------------ value and diagnostics
    @torch.no_grad()
    def _values(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, L] -> [N]``: ``Q(z, pi_mean(z))``, every head decoded and averaged."""
        _, info = self.model.pi(z)
        return self.twohot.decode(self.model.Q(z, info["mean"])).mean(0)

    def state_value(self, obs: np.ndarray) -> float | None:
        if not self.pretrained:
            return None
        return float(self._values(self.planning_model.encode(obs))[0])

    @torch.no_grad()
    def probe_errors(self) -> dict[str, float]:
        """The value-equivalence probe on the stored evaluation steps (module docstring)."""
        steps = self.probe.steps()
        n = len(steps.obs)
        if not n or not self.pretrained:
            return {}
        dev, m = self.ctx.device, self.model
        ends = self.probe.episode_ends(np.arange(n))
        obs, act, nxt = (
            torch.as_tensor(a, device=dev) for a in (steps.obs, steps.act, steps.next_obs)
        )
        rew = torch.as_tensor(steps.reward, device=dev)
        z_next_real = m.encode(nxt)  # z of the state after step i
        v_next_real = self._values(z_next_real)
        idx = np.arange(n)
        z = m.encode(obs)
        out: dict[str, float] = {}
        for t in range(max(self.cfg.probe_horizons)):  # open loop: sequential in k
            k = t + 1
            j = np.minimum(idx + t, n - 1)  # the k-th step of the window from i
            scored = k in self.cfg.probe_horizons
            r_hat = self.twohot.decode(m.reward(z, act[j])) if scored else None
            z = m.next(z, act[j])
            if r_hat is None:
                continue
            ok = np.flatnonzero(idx + t < ends)
            if not len(ok):
                continue
            sel = torch.as_tensor(ok, device=dev)
            last = torch.as_tensor(j[ok], device=dev)
            out[f"ve_latent_err_h{k}"] = float(((z[sel] - z_next_real[last]) ** 2).mean())
            out[f"ve_reward_err_h{k}"] = float((r_hat[sel] - rew[last]).abs().mean())
            v_hat = self._values(z[sel])
            out[f"ve_value_err_h{k}"] = float((v_hat - v_next_real[last]).abs().mean())
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def eval_metrics(self) -> Mapping[str, float]:
        out = self.probe_errors()
        self.probe.clear()
        if self._plan_count:
            out["plan_return"] = self._plan_return_sum / self._plan_count
            self._plan_return_sum, self._plan_count = 0.0, 0
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "pi_optim": self.pi_optim.state_dict(),
            "scale": self.scale.state_dict(),
            "replay": self.replay.state_dict(),
            "probe": self.probe.state_dict(),
            "env_steps": self.env_steps,
            "pretrained": self.pretrained,
            "plan_return_sum": self._plan_return_sum,
            "plan_count": self._plan_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.scale.load_state_dict(state["scale"])
        self.replay.load_state_dict(state["replay"])
        self.probe.load_state_dict(state["probe"])
        self.env_steps = int(state["env_steps"])
        self.pretrained = bool(state["pretrained"])
        self._plan_return_sum = float(state["plan_return_sum"])
        self._plan_count = int(state["plan_count"])
