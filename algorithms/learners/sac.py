"""Soft Actor-Critic learner, independent of env stepping (Haarnoja et al. 2018b).

"Soft Actor-Critic Algorithms and Applications" (arXiv:1812.05905), Algorithm 1 with automatic
entropy tuning: twin Q critics with Polyak-averaged targets, a tanh-squashed Gaussian actor trained
through the reparameterisation trick, and a learned temperature ``alpha``.

The learner only sees tensors. The ``sac`` plugin (``algorithms/sac.py``) drives it from real
transitions; MBPO, MVE and STEVE drive it from model rollouts and may pass their own TD targets
(``update(batch, target=...)``).

Action spaces: the actor and the critics work in the normalised box ``[-1, 1]^A`` (as softlearning
does through its action-rescaling wrapper). :meth:`SACLearner.act` returns env units
``low + (a + 1) / 2 * (high - low)`` and :meth:`SACLearner.update` takes a batch whose ``act`` is in
env units, so callers never rescale. Log-probabilities, entropies and the target entropy ``-|A|``
are those of the normalised action.

The critics (twin by default) are one :class:`~algorithms.models.layers.EnsembleMLP`, so every Q
function runs in one batched op per layer (the target critics likewise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.api import NonNegativeInt, PositiveFloat, PositiveFraction, PositiveInt
from algorithms.learners.base import ActorCriticLearner, CriticTargets, adam, mlp
from algorithms.replay.buffer import Batch

__all__ = ["CriticTargets", "SACLearner", "SACLearnerConfig", "SquashedGaussianActor"]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""Clamp of the actor's log standard deviation (softlearning ``SCALE_DIAG_MIN_MAX``)."""


@dataclass(frozen=True)
class SACLearnerConfig:
    """The SAC hyperparameters, written once. "Table 1" is Haarnoja et al. 2018b ("Soft
    Actor-Critic Algorithms and Applications", arXiv:1812.05905), "softlearning" its official code
    (``examples/development/variants.py``); MBPO's code (jannerm/mbpo ``examples/development/
    base.py``) uses the same values.

    The ``sac`` plugin's config extends this class (flat keys: ``sac.lr``); the model-based SAC
    agents nest it (``sac: SACLearnerConfig``; ``SET mbpo.sac.lr=...``).
    """

    lr: PositiveFloat = 3e-4
    """Adam learning rate of actor, critics and temperature (Table 1: 3e-4; MBPO ``base.py``)."""
    gamma: PositiveFraction = 0.99
    """Discount (Table 1: 0.99; MBPO configs ``discount: 0.99``)."""
    tau: PositiveFraction = 0.005
    """Polyak coefficient of the target critics, updated every gradient step (Table 1: 0.005,
    target update interval 1)."""
    batch_size: PositiveInt = 256
    """Minibatch size (Table 1: 256; MBPO ``sampler_params.batch_size: 256``). The learner uses
    the batch it gets; callers sample this."""
    hidden: PositiveInt = 256
    """Hidden units per layer of actor and critics (Table 1: 256; MBPO ``base.py`` ``M = 256``)."""
    layers: NonNegativeInt = 2
    """Hidden layers of actor and critics (Table 1: 2), ReLU (Table 1)."""
    target_entropy: float | None = None
    """Entropy target of the temperature loss; ``None``: the plugin's per-task value, by default
    ``-|A|`` (Table 1: -dim(A); softlearning ``target_entropy='auto'``), resolved per task."""
    init_alpha: PositiveFloat = 1.0
    """Initial temperature (softlearning: ``log_alpha`` initialised to 0)."""
    autotune_alpha: bool = True
    """Learn ``alpha`` (Haarnoja et al. 2018b, Sec. 5); False keeps ``init_alpha`` fixed."""
    bf16: bool = False
    """Run the network passes under bfloat16 autocast (losses stay float32). Not in the paper."""
    critics: PositiveInt = 2
    """Q functions, one batched ensemble; targets and the actor take their minimum (Table 1: 2,
    clipped double Q). STEVE's paper form uses 4 (its Q ensemble, ``steve.sac.critics=4``)."""


class SquashedGaussianActor(nn.Module):
    """``pi(a|s) = tanh(N(mu(s), sigma(s)^2))`` over ``[-1, 1]^A``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden, layers)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, O]`` -> ``mean [B, A]``, ``log_std [B, A]`` (float32, clamped)."""
        mean, log_std = self.net(obs).float().chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample from standard-normal ``noise [B, A]``.

        Returns ``a [B, A]`` in ``(-1, 1)`` and ``log pi(a|s) [B]``, with the tanh correction
        ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)`` written in the stable form
        ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``.
        """
        mean, log_std = self(obs)
        u = mean + log_std.exp() * noise
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), log_prob


class SACLearner(ActorCriticLearner):
    """SAC on the shared actor-critic plumbing (:class:`~algorithms.learners.base.
    ActorCriticLearner`): a squashed Gaussian actor, the clipped (minimum) soft TD target and a
    learned temperature. Arguments as the base's; ``cfg`` a :class:`SACLearnerConfig` (or a
    plugin config extending it); ``generator`` draws the actor's noise."""

    name = "SAC"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.log_alpha = torch.tensor(
            math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.autotune_alpha
        )
        self.target_entropy = float(
            -self.act_dim if cfg.target_entropy is None else cfg.target_entropy
        )
        self.actor_opt = adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), cfg.lr)
        self.alpha_opt = adam([self.log_alpha], cfg.lr)

    def make_actor(self, net_obs_dim: int) -> nn.Module:
        return SquashedGaussianActor(net_obs_dim, self.act_dim, self.cfg.hidden, self.cfg.layers)

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def aggregate_q(self, q: torch.Tensor) -> torch.Tensor:
        return q.min(0).values

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: ``obs [B, O]`` -> normalised ``a [B, A]``, ``log_prob [B]``."""
        noise = self._noise((obs.shape[0], self.act_dim))
        with self._autocast():
            return self.actor.sample(self._net_obs(obs), noise)

    def rollout_policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Imagined rollouts follow the current stochastic policy (:meth:`policy`)."""
        return self.policy(obs)

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return torch.tanh(self.actor(self._net_obs(obs))[0])

    def explore_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(obs)[0]

    @torch.no_grad()
    def soft_value_target(self, next_obs: torch.Tensor) -> torch.Tensor:
        """``V(s') = min_i Q_targ_i(s', a') - alpha log pi(a'|s')``, ``a' ~ pi``: ``[B]``."""
        next_a, next_log_prob = self.policy(next_obs)
        q_next = self.q_values(next_obs, next_a, target=True).min(0).values
        return q_next - self.alpha * next_log_prob

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """One-step soft TD target ``r + gamma (1 - terminated) V(s')``: ``[B]``."""
        v_next = self.soft_value_target(batch.next_obs)
        return batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * v_next

    def update_actor(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step of the actor on ``E[alpha log pi(a|s) - min_i Q_i(s, a)]`` (``a``
        reparameterised, the critics frozen for this pass) and, with ``autotune_alpha``, of the
        temperature on ``-log_alpha (log pi + target_entropy)`` (softlearning's form), at the
        states ``obs [B, O]``. Returns detached scalar tensors ``actor_loss``, ``alpha_loss``,
        ``alpha`` (before this step), ``entropy`` (no device sync)."""
        alpha = self.alpha
        self.critic.requires_grad_(False)
        a_pi, log_prob = self.policy(obs)
        q_pi = self.q_values(obs, a_pi).min(0).values
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        log_prob = log_prob.detach()
        if self.cfg.autotune_alpha:
            alpha_loss = -(self.log_alpha * (log_prob + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        else:
            alpha_loss = torch.zeros((), device=self.device)
        return {
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": alpha,
            "entropy": -log_prob.mean(),
        }

    # ---- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
