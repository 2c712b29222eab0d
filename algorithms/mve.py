"""``mve``: Model-based Value Expansion (Feinberg et al. 2018, arXiv:1803.00101) on SAC.

The learned model is used for one thing only: better critic targets. The policy and the critics
train on real minibatches; for each real transition ``(s, a, r, s')`` the model rolls the current
policy ``H`` steps from the real ``s'``, and the critics regress on the ``H``-step target
bootstrapped by the target critics at the last imagined state. With the TD-k trick (paper Sec. 3,
vlad17/mve's default) the critics also regress every imagined ``(s_t, a_t)``, ``t < H``, on its own
``(H - t)``-step target, so they are trained on the state distribution the targets query; the loss
of the ``H + 1`` rows is divided by ``H`` (vlad17/mve ``div_by_h``). ``horizon=0`` is SAC.

On SAC (``../shared/guide/facts-wave2.md`` section 1: vlad17/mve ``sac_learner.py`` runs MVE on
SAC too) every target is the soft one: with ``w_j = gamma^j alive_j`` (``alive_j`` = the imagined
state ``j`` is reached without termination; ``alive_0 = 1 - terminated``) and one policy sample
``a_j ~ pi(.|s_j)`` per imagined state, ``Z_t = sum_{j=t}^{H-1} w_j (r_j - alpha log pi(a_j|s_j)) +
w_H (min_i Q_targ_i(s_H, a_H) - alpha log pi(a_H|s_H))``; the real row's target is ``r + gamma
Z_0`` and imagined row ``t``'s is ``Z_t / w_t + alpha log pi(a_t|s_t)``. One reverse cumulative sum
over ``[H + 1, B]``: no loop over horizons or samples outside the model rollout itself.

Deviations (each a config field): SAC instead of the paper's DDPG (``learner: ddpg`` is the
paper's, its targets without entropy terms, rolled out with the target actor); MBPO's probabilistic ensemble
(mean of a random elite per row and step, ``sample=False``) instead of the paper's deterministic
8x128 network; the model's learned reward instead of the paper's known reward function
(``model.learn_reward=false`` uses the task's); the task's termination function masks imagined
post-terminal steps (the paper masks only the real ``done``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from algorithms.agents.model_based_sac import MBPOModelConfig, ModelBasedSAC, ModelBasedSACConfig
from algorithms.api import NonNegativeInt, PositiveInt
from algorithms.learners.ddpg import DDPGLearnerConfig
from algorithms.learners.sac import CriticTargets
from algorithms.planners.rollout import StepFn, model_step
from algorithms.replay.buffer import Batch


def _model_config() -> MBPOModelConfig:
    return MBPOModelConfig(hidden=200, train_every=250)


def _ddpg_config() -> DDPGLearnerConfig:
    return DDPGLearnerConfig(
        actor_lr=1e-3, critic_lr=1e-3, tau=1e-2, batch_size=64, hidden=64, exploration_noise=0.2
    )


@dataclass(frozen=True)
class MVEConfig(ModelBasedSACConfig):
    """MVE's hyperparameters on the model-based SAC base
    (:class:`~algorithms.agents.model_based_sac.ModelBasedSACConfig`: SAC's Table 1 learner,
    MBPO's ensemble and random phase). "Code" is vlad17/mve (``experiments/hc5.yaml``,
    ``mve/sac_learner.py``); "paper" is Feinberg et al. 2018."""

    horizon: NonNegativeInt = 5
    """Model steps ``H`` from the real next state (paper and code ``model_horizon: 5``; ``0``:
    plain SAC targets)."""
    td_k: bool = True
    """Also regress the critics on the imagined states' own targets (the paper's TD-k trick;
    code ``drop_tdk: false``). ``False``: only the real transition, with its ``H``-step target."""
    sample: bool = False
    """Sample the model's Gaussian next state in the target rollouts. Default ``False``: its mean
    (the paper's model is deterministic)."""
    updates_per_step: PositiveInt | None = 4
    """SAC gradient steps per env step (code: 4 learner batches per env step)."""
    initial_random_steps: NonNegativeInt = 5000
    """Uniform random env steps before model and SAC training. MBPO's 5000 (code
    ``base.py``), so the two compare on the same data; vlad17/mve waits for 10k transitions."""
    ddpg: DDPGLearnerConfig = field(default_factory=_ddpg_config)
    """The paper's learner (``learner: ddpg``): vlad17/mve's DDPG (``experiments/hc5.yaml``:
    actor and critic 2 x 64, Adam 1e-3 and tau 1e-2 (HalfCheetah; Walker2d 1e-4 and 1e-3), batch
    64, Gaussian exploration 0.2)."""
    model: MBPOModelConfig = field(default_factory=_model_config)
    """The dynamics and reward model: MBPO's ensemble (7 members, 5 elites, 4 x 200 swish,
    refit every 250 env steps: jannerm/mbpo's generic values) in place of the paper's single
    8 x 128 network."""


class MVEAgent(ModelBasedSAC):
    """The ``mve`` plugin: :class:`~algorithms.agents.model_based_sac.ModelBasedSAC` whose critic
    targets (:meth:`critic_targets`) are ``H``-step model expansions."""

    name = "mve"
    Config = MVEConfig

    def target_step_fn(self) -> StepFn:
        """The model the targets roll out from the batch's next states: a random elite per row
        and step (its mean unless ``sample``), or the true model with ``oracle``."""
        assert isinstance(self.cfg, MVEConfig)
        sims = self.sim_states(self.batch_rows, next_state=True)
        return self.imagination(sample=self.cfg.sample, sim_states=sims)

    @torch.no_grad()
    def critic_targets(self, batch: Batch) -> CriticTargets | None:
        """The real row with its ``H``-step soft target, then (``td_k``) the ``H`` imagined rows
        ``t = 0..H-1`` with theirs; rows past a termination get weight 0; weights ``1 / (B H)``
        (the loss divided by ``H``)."""
        cfg = self.cfg
        assert isinstance(cfg, MVEConfig)
        h = cfg.horizon
        if h == 0:
            return None
        learner, task = self.learner, self.task
        gamma, alpha = self.learner_cfg.gamma, learner.alpha
        b = batch.obs.shape[0]
        step_fn = self.target_step_fn()
        states, acts, logps, rewards = [batch.next_obs], [], [], []
        alive = [1.0 - batch.terminated]
        for _ in range(h):  # the rollout is sequential; everything after it is batched
            s = states[-1]
            a_unit, logp = learner.rollout_policy(s)
            a = learner.to_env_action(a_unit)
            nxt, r = model_step(step_fn, s, a, task.reward_fn)
            acts.append(a)
            logps.append(logp)
            rewards.append(r)
            alive.append(alive[-1] * self.data.continuation(s, a, nxt).reshape(b))
            states.append(nxt)
        a_unit, logp = learner.rollout_policy(states[-1])
        q_last = learner.aggregate_q(learner.q_values(states[-1], a_unit, target=True))  # [B]
        logps.append(logp)
        steps = torch.arange(h + 1, device=q_last.device, dtype=q_last.dtype)
        w = torch.stack(alive) * gamma ** steps.unsqueeze(1)  # [H+1, B]
        lp = torch.stack(logps)  # [H+1, B]
        terms = w * (-alpha * lp)
        terms[:h] += w[:h] * torch.stack(rewards)
        terms[h] += w[h] * q_last
        z = terms.flip(0).cumsum(0).flip(0)  # [H+1, B]: Z_t = sum_{j >= t} terms_j
        y_real = batch.reward + gamma * z[0]
        weight = torch.full((b,), 1.0 / (b * h), device=y_real.device)
        if not cfg.td_k:
            return CriticTargets(batch.obs, batch.act, y_real, weight * h)
        live = w[:h] > 0
        y_imag = torch.where(live, z[:h] / torch.where(live, w[:h], 1.0) + alpha * lp[:h], 0.0)
        return CriticTargets(
            obs=torch.cat([batch.obs, torch.cat(states[:h])]),
            act=torch.cat([batch.act, torch.cat(acts)]),
            target=torch.cat([y_real, y_imag.reshape(-1)]),
            weight=torch.cat([weight, (live.float() / (b * h)).reshape(-1)]),
        )
