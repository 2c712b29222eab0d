"""``steve``: Stochastic Ensemble Value Expansion (Buckman et al. 2018, arXiv:1807.01675) on SAC.

Like MVE (:mod:`algorithms.mve`), the model only improves the critic targets; STEVE decides *how
far* to trust it, per sample. From the real next state each elite of the dynamics ensemble rolls the
current policy ``H`` steps (a rollout keeps its member throughout: tensorflow/models
``research/steve/valuerl.py``, ``build_Q_expansion_graph``). For every horizon ``i = 0..H`` and every
(dynamics ``m``, reward ``n``, Q ``l``) triple there is a candidate target

    T_i = r + gamma sum_{j<i} gamma^j alive_j (r^n_j - alpha log pi(a_j|s_j))
            + gamma^{i+1} alive_i (Q^l_targ(s_i, a_i) - alpha log pi(a_i|s_i)),

(``alive_j``: the imagined state ``j`` of rollout ``m`` is reached without termination;
``alive_0 = 1 - terminated``). Per horizon, the mean ``mu_i`` and variance ``sigma_i^2`` over the
``M N L`` candidates; the target is ``sum_i w_i mu_i`` with ``w_i ~ 1 / (sigma_i^2 + 1e-8)``
normalised to sum to 1: horizons whose candidates disagree (the model or the critics are uncertain)
get little weight. The candidates of a batch are one set of tensor ops over ``[H + 1, N, M, L, B]``;
each imagined step is one ensemble call (every member on its own rollout; with ``cross_rewards``,
every member on every rollout's states, each member's next state feeding its own rollout and every
member's reward a reward candidate).

Deviations (each a config field; ``../shared/guide/facts-wave2.md`` section 2 has the paper's
defaults): SAC (soft targets, entropy terms along the rollout) instead of DDPG (``learner: ddpg``
is the paper's, with its Q ensemble of 4); the Q candidates are SAC's critics, each taken on its
own (``sac.critics``: 2; ``sac.critics=4`` gives SAC the paper's ensemble size, its own targets and
actor then taking the minimum of the four); one
probabilistic ensemble predicts next state and reward (MBPO's, 4 members and 4 elites as the paper's
ensembles of 4), its members' reward heads the reward ensemble; the task's termination function in
place of the paper's learned done-predictor; Polyak-averaged target critics instead of the paper's
hard copy every 500 updates; 5000 random steps (MBPO's) instead of 10k frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from algorithms.agents.model_based_sac import MBPOModelConfig, ModelBasedSAC, ModelBasedSACConfig
from algorithms.api import AlgoConfig, NonNegativeInt, PositiveInt, RunContext
from algorithms.learners.ddpg import DDPGLearnerConfig
from algorithms.planners.rollout import model_step
from algorithms.replay.buffer import Batch
from envs.spec import TaskSpec

#: Guard of the inverse-variance weights (the paper's code adds 1e-8 to the variances).
VAR_EPS = 1e-8


def _model_config() -> MBPOModelConfig:
    return MBPOModelConfig(members=4, elites=4, hidden=200, train_every=250)


def _ddpg_config() -> DDPGLearnerConfig:
    return DDPGLearnerConfig(
        actor_lr=3e-4, critic_lr=3e-4, batch_size=512, hidden=128, layers=4, critics=4,
        target_every=500, preactivation_penalty=1e-3,
    )  # fmt: skip


@dataclass(frozen=True)
class STEVEConfig(ModelBasedSACConfig):
    """STEVE's hyperparameters on the model-based SAC base
    (:class:`~algorithms.agents.model_based_sac.ModelBasedSACConfig`). "Code" is
    tensorflow/models ``research/steve`` (``config/algos/steve.json``, ``config/core/*.json``);
    "paper" is Buckman et al. 2018."""

    horizon: NonNegativeInt = 3
    """Model steps ``H``: candidates for horizons ``0..H`` (code ``rollout_len: 3``; ``0``: SAC
    targets with the Q-ensemble mean)."""
    sample: bool = False
    """Sample each member's Gaussian next state in the target rollouts. Default ``False``: its
    mean (the code's transition ensemble is deterministic)."""
    updates_per_step: PositiveInt | None = 4
    """SAC gradient steps per env step (code ``frames_per_update: 0.25``: 4 updates per frame)."""
    initial_random_steps: NonNegativeInt = 5000
    """Uniform random env steps before model and SAC training. MBPO's 5000 (code ``base.py``),
    so they compare on the same data; the STEVE code collects 10k random frames."""
    cross_rewards: bool = False
    """Score every rollout with every member's reward head (``N = M`` reward candidates: the
    paper's separate reward ensemble, ``M N L`` candidates per horizon at ``M`` times the model
    evaluations). Default ``False``: each rollout's own member's reward (``N = 1``, ``M L``
    candidates; both ensembles are one network here, so the pairing is the model's own)."""
    ddpg: DDPGLearnerConfig = field(default_factory=_ddpg_config)
    """The paper's learner (``learner: ddpg``): the code's DDPG (``config/core/basic.json``,
    ``valuerl_learner.py``: a Q ensemble of 4, policy and Q 4 x 128, Adam 3e-4, batch 512, target
    hard copy every 500 updates, 1e-3 penalty on the actor's pre-tanh output; the exploration
    noise is CleanRL's 0.1, the facts sheet has none). Each critic regresses the same target (the
    code trains one random member per sample)."""
    model: MBPOModelConfig = field(default_factory=_model_config)
    """The dynamics and reward ensembles: MBPO's probabilistic ensemble with the paper's 4
    members (code ``transition`` and ``reward`` ensembles of 4), all 4 elites, 4 x 200 swish,
    refit every 250 env steps (jannerm/mbpo's generic values; the code's transition net is
    8 x 512, trained continuously)."""


class STEVEAgent(ModelBasedSAC):
    """The ``steve`` plugin: :class:`~algorithms.agents.model_based_sac.ModelBasedSAC` whose
    critic target (:meth:`critic_targets`) is the inverse-variance-weighted mix of the horizon
    candidates; logs the mean weight of each horizon (``steve_w_h{i}``)."""

    name = "steve"
    Config = STEVEConfig

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        self._weight_sum: torch.Tensor | None = None  # [H+1] over the updates of train_policy
        self._weight_count = 0

    @torch.no_grad()
    def candidate_targets(self, batch: Batch) -> torch.Tensor:
        """``[H + 1, N, M, L, B]`` candidate targets of ``batch`` (see the module docstring):
        ``N`` reward members (``M`` with ``cross_rewards``, else 1: each rollout's own member or
        the task's reward), ``M`` dynamics members, ``L`` critics."""
        cfg, learner, task, model = self.cfg, self.learner, self.task, self.model
        assert isinstance(cfg, STEVEConfig)
        h, gamma, alpha = cfg.horizon, self.learner_cfg.gamma, learner.alpha
        b, o = batch.next_obs.shape
        k = 1 if cfg.oracle else len(model.elites)  # the true model is one deterministic member
        members = torch.arange(k, device=batch.obs.device)
        true_step = None
        if cfg.oracle:
            sims = self.sim_states(self.batch_rows, next_state=True)
            true_step = self.imagination(sample=False, sim_states=sims)

        def policy(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """``[M, B, O]`` -> unit actions ``[M, B, A]``, log-probs ``[M, B]``."""
            a_unit, logp = learner.rollout_policy(states.reshape(-1, o))
            return a_unit.view(*states.shape[:2], -1), logp.view(states.shape[:2])

        # horizon 0 is the real next state, the same for every rollout: one action sample for all
        a0, lp0 = policy(batch.next_obs.unsqueeze(0))
        s, a_unit, logp = batch.next_obs.expand(k, b, o), a0.expand(k, b, -1), lp0.expand(k, b)
        alive = [(1.0 - batch.terminated).expand(k, b)]
        states, acts, logps, rewards = [s], [a_unit], [logp], []
        for _ in range(h):  # the rollout is sequential; the candidates after it are batched
            a = learner.to_env_action(a_unit)  # [M, B, A]
            flat_s, flat_a = s.reshape(k * b, o), a.reshape(k * b, -1)
            r: torch.Tensor | None = None
            if true_step is not None:
                nxt, r = model_step(true_step, flat_s, flat_a, task.reward_fn)
                nxt, r = nxt.view(k, b, o), r.view(1, k, b)
            elif cfg.cross_rewards:
                # every member on every rollout's states: [N, M * B, ...]; member m's rows feed m
                out = model.step_members(flat_s, flat_a, sample=cfg.sample,
                                         generator=self.ctx.torch_gen)  # fmt: skip
                nxt = out.next_obs.view(k, k, b, o)[members, members]  # [M, B, O]
            else:  # member m on rollout m only
                out = model.step_members(s, a, sample=cfg.sample, generator=self.ctx.torch_gen)
                nxt = out.next_obs  # [M, B, O]
            if r is None:
                if out.reward is not None:
                    r = out.reward.view(-1, k, b)  # [N, M, B], N = M or 1
                else:
                    assert task.reward_fn is not None
                    r = task.reward_fn(flat_s, flat_a, nxt.reshape(k * b, o)).view(1, k, b)
            cont = self.data.continuation(flat_s, flat_a, nxt.reshape(k * b, o)).view(k, b)
            rewards.append(r)
            alive.append(alive[-1] * cont)
            s = nxt
            a_unit, logp = policy(s)
            states.append(s)
            acts.append(a_unit)
            logps.append(logp)
        # every critic at every imagined state, one call (horizon 0 once for all rollouts):
        # [L, B + H * M * B] -> [L, H+1, M, B]
        q = learner.q_values(torch.cat([batch.next_obs, torch.stack(states[1:]).reshape(-1, o)]),
                             torch.cat([a0[0], torch.stack(acts[1:]).reshape(h * k * b, -1)]),
                             target=True)  # fmt: skip
        q = torch.cat([q[:, :b].view(-1, 1, 1, b).expand(-1, 1, k, b),
                       q[:, b:].view(-1, h, k, b)], dim=1)  # fmt: skip
        steps = torch.arange(h + 1, device=q.device, dtype=q.dtype)
        w = torch.stack(alive) * gamma ** steps.view(-1, 1, 1)  # [H+1, M, B]
        lp = torch.stack(logps)  # [H+1, M, B]
        value = w.unsqueeze(1) * (q.transpose(0, 1) - alpha * lp.unsqueeze(1))  # [H+1, L, M, B]
        prefix = torch.zeros(h + 1, *(rewards[0].shape if h else (1, k, b)), device=q.device)
        if h:
            steps_r = w[:h].unsqueeze(1) * (torch.stack(rewards) - alpha * lp[:h].unsqueeze(1))
            prefix[1:] = steps_r.cumsum(0)  # [H+1, N, M, B]: sum over j < i
        cand = prefix.unsqueeze(3) + value.transpose(1, 2).unsqueeze(1)  # [H+1, N, M, L, B]
        return batch.reward + gamma * cand

    @torch.no_grad()
    def critic_targets(self, batch: Batch) -> torch.Tensor:
        """``[B]``: the candidates' per-horizon means weighted by their inverse variances."""
        cand = self.candidate_targets(batch).flatten(1, 3)  # [H+1, N*M*L, B]
        mean = cand.mean(1)
        var = cand.var(1, unbiased=False)
        inv = 1.0 / (var + VAR_EPS)
        weight = inv / inv.sum(0, keepdim=True)  # [H+1, B]
        w_mean = weight.mean(1)
        self._weight_sum = w_mean if self._weight_sum is None else self._weight_sum + w_mean
        self._weight_count += 1
        return (weight * mean).sum(0)

    def train_policy(self) -> dict[str, float]:
        """SAC's updates with STEVE's targets; adds ``steve_w_h{i}``, the mean weight of horizon
        ``i`` over this step's updates and their batches (how far STEVE trusts the model)."""
        metrics = super().train_policy()
        if self._weight_sum is not None:
            mean = (self._weight_sum / self._weight_count).tolist()
            metrics.update({f"steve_w_h{i}": float(v) for i, v in enumerate(mean)})
        self._weight_sum, self._weight_count = None, 0
        return metrics
