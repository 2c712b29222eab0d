"""Deep Deterministic Policy Gradient learner (Lillicrap et al. 2016, arXiv:1509.02971),
independent of env stepping: the value-expansion papers' base (MVE: vlad17/mve ``mve/ddpg/``;
STEVE: tensorflow/models ``research/steve``) and the ``ddpg`` plugin, the suite's second
model-free reference.

A deterministic actor ``mu(s) = tanh(f(s))`` and ``critics`` Q functions (one batched
:class:`~algorithms.models.layers.EnsembleMLP`; STEVE's Q ensemble is ``critics=4``); the critics
regress ``r + gamma (1 - terminated) mean_i Q_targ_i(s', mu_targ(s'))``; the actor ascends
``mean_i Q_i(s, mu(s))`` (minus STEVE's penalty on the pre-tanh activations); exploration adds
Gaussian noise of ``exploration_noise`` half-ranges to the action. Targets of actor and critics are
Polyak averaged every update, or hard-copied every ``target_every`` updates (STEVE).

Same surface as SAC's learner (:class:`~algorithms.learners.base.ActorCriticLearner`), so the
model-based agents take either (``learner: ddpg``): imagined rollouts follow the target actor
(MVE's code), with no entropy terms (``alpha = 0``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from algorithms.api import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
)
from algorithms.learners.base import ActorCriticLearner, adam, mlp
from algorithms.replay.buffer import Batch

__all__ = ["DDPGLearner", "DDPGLearnerConfig"]


@dataclass(frozen=True)
class DDPGLearnerConfig:
    """The DDPG hyperparameters. Defaults: CleanRL's ``ddpg_continuous_action.py`` (Fujimoto et
    al. 2018's re-tuned DDPG, the common modern reference); Lillicrap et al. 2016's originals in
    the docstrings; MVE's and STEVE's plugins set their papers' values (their configs' ``ddpg``
    field)."""

    actor_lr: PositiveFloat = 3e-4
    """Adam learning rate of the actor (CleanRL 3e-4; Lillicrap 1e-4)."""
    critic_lr: PositiveFloat = 3e-4
    """Adam learning rate of the critics (CleanRL 3e-4; Lillicrap 1e-3)."""
    gamma: PositiveFraction = 0.99
    """Discount (CleanRL and Lillicrap: 0.99)."""
    tau: PositiveFraction = 0.005
    """Polyak coefficient of the targets, every update (CleanRL 0.005; Lillicrap 0.001)."""
    batch_size: PositiveInt = 256
    """Minibatch size (CleanRL 256; Lillicrap 64). The learner uses the batch it gets."""
    hidden: PositiveInt = 256
    """Hidden units per layer of actor and critics (CleanRL 256; Lillicrap 400 and 300)."""
    layers: NonNegativeInt = 2
    """Hidden ReLU layers of actor and critics (CleanRL and Lillicrap: 2)."""
    exploration_noise: NonNegativeFloat = 0.1
    """Standard deviation of the Gaussian action noise in training, in half-ranges of the action
    box (CleanRL 0.1; Lillicrap: Ornstein-Uhlenbeck noise, sigma 0.2)."""
    critics: PositiveInt = 1
    """Q functions; targets and the actor take their mean (DDPG: 1; STEVE's Q ensemble: 4)."""
    target_every: NonNegativeInt = 0
    """``0``: Polyak targets every update (``tau``); ``N``: hard copies every ``N`` updates
    (STEVE's code: 500)."""
    preactivation_penalty: NonNegativeFloat = 0.0
    """Weight of ``mean ||f(s)||^2`` (the actor's pre-tanh output) in the actor loss (STEVE's
    code: 1e-3; DDPG: 0)."""
    bf16: bool = False
    """Run the network passes under bfloat16 autocast (losses stay float32). Not in the papers."""


class DeterministicActor(nn.Module):
    """``mu(s) = tanh(f(s))`` over ``[-1, 1]^A``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden, layers)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, O]`` -> ``mu [B, A]`` and the pre-tanh ``f(s) [B, A]`` (float32)."""
        pre = self.net(obs).float()
        return torch.tanh(pre), pre


class DDPGLearner(ActorCriticLearner):
    """DDPG on the shared actor-critic plumbing. Arguments as
    :class:`~algorithms.learners.base.ActorCriticLearner`'s; ``cfg`` a
    :class:`DDPGLearnerConfig`; ``generator`` draws the exploration noise."""

    name = "DDPG"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr)
        self._target_params += list(self.actor_target.parameters())
        self._online_params = self._critic_params + list(self.actor.parameters())

    def make_actor(self, net_obs_dim: int) -> nn.Module:
        return DeterministicActor(net_obs_dim, self.act_dim, self.cfg.hidden, self.cfg.layers)

    def aggregate_q(self, q: torch.Tensor) -> torch.Tensor:
        return q.mean(0)

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.actor(self._net_obs(obs))[0]

    def explore_action(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.deterministic_action(obs)
        noise = self.cfg.exploration_noise * self._noise(tuple(a.shape))
        return (a + noise).clamp(-1.0, 1.0)

    @torch.no_grad()
    def rollout_policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The target actor (MVE's code rolls its model out with it), log-probs 0."""
        with self._autocast():
            a = self.actor_target(self._net_obs(obs))[0]
        return a, torch.zeros(obs.shape[0], device=self.device)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """``r + gamma (1 - terminated) mean_i Q_targ_i(s', mu_targ(s'))``: ``[B]``."""
        a_next, _ = self.rollout_policy(batch.next_obs)
        q_next = self.q_values(batch.next_obs, a_next, target=True).mean(0)
        return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * q_next

    def update_actor(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step of the actor on ``-mean_i Q_i(s, mu(s))`` (+ the pre-activation
        penalty), the critics frozen for this pass. Returns the detached ``actor_loss``."""
        self.critic.requires_grad_(False)
        with self._autocast():
            a, pre = self.actor(self._net_obs(obs))
        actor_loss = -self.q_values(obs, a).mean(0).mean()
        if self.cfg.preactivation_penalty:
            actor_loss = actor_loss + self.cfg.preactivation_penalty * pre.pow(2).sum(-1).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)
        return {"actor_loss": actor_loss.detach()}

    @torch.no_grad()
    def update_targets(self) -> None:
        """Targets of actor and critics: Polyak every update, or a hard copy every
        ``target_every`` updates; counts one update."""
        self.updates += 1
        if not self.cfg.target_every:
            torch._foreach_lerp_(self._target_params, self._online_params, self.cfg.tau)
        elif self.updates % self.cfg.target_every == 0:
            torch._foreach_copy_(self._target_params, self._online_params)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "actor_target": self.actor_target.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.actor_target.load_state_dict(state["actor_target"])
