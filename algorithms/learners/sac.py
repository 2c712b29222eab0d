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

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algorithms.api import NonNegativeInt, PositiveFloat, PositiveFraction, PositiveInt
from algorithms.models.layers import EnsembleMLP
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


class CriticTargets(NamedTuple):
    """Critic regression rows other than the batch's own (value expansion: the real transition
    plus imagined ones, each with its target and weight), the batch's ``B`` real rows first (the
    logged ``q_mean`` is theirs). Shapes ``[N, ...]``."""

    obs: torch.Tensor
    """``[N, O]`` states."""
    act: torch.Tensor
    """``[N, A]`` actions in env units."""
    target: torch.Tensor
    """``[N]`` regression targets (detached)."""
    weight: torch.Tensor
    """``[N]`` row weights: each critic's loss is ``0.5 * sum_n weight_n (Q(s_n, a_n) -
    target_n)^2`` (``1 / B`` on every row is SAC's mean)."""


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for every tensor: ~5x less optimizer time at SAC's
    sizes on CPU than the per-tensor loop, same arithmetic), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - depends on the build / device
        return torch.optim.Adam(params, lr=lr)


def mlp(in_features: int, out_features: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output."""
    dims = [in_features] + [hidden] * layers
    mods: list[nn.Module] = []
    for i, o in itertools.pairwise(dims):
        mods += [nn.Linear(i, o), nn.ReLU()]
    mods.append(nn.Linear(dims[-1], out_features))
    return nn.Sequential(*mods)


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


class SACLearner:
    """SAC's networks, optimisers and gradient step; knows nothing about environments.

    Args:
        obs_dim, act_dim: sizes ``O`` and ``A``.
        act_low, act_high: ``[A]`` env action bounds (finite).
        cfg: hyperparameters (a :class:`SACLearnerConfig`, or a plugin config extending it).
        device: where networks live and :meth:`update` computes.
        generator: CPU ``torch.Generator`` for the actor's noise (never the global RNG). On a
            non-CPU device a device generator is seeded from it once, so sampling stays on device.
        obs_dims: the observation dims the networks see (``None``: all ``O``). Callers keep
            passing full ``[B, O]`` observations; the learner selects these dims itself (the
            locomotion tasks' root x is left out: ``TaskSpec.policy_obs_dims``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: np.ndarray | torch.Tensor,
        act_high: np.ndarray | torch.Tensor,
        cfg: SACLearnerConfig,
        device: torch.device | str,
        generator: torch.Generator,
        obs_dims: tuple[int, ...] | None = None,
    ) -> None:
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        self._shared_generator = self.device.type == "cpu"
        if self._shared_generator:
            self.generator = generator
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            self.generator = torch.Generator(self.device).manual_seed(seed)

        low = torch.as_tensor(act_low, dtype=torch.float32).to(self.device).reshape(act_dim)
        high = torch.as_tensor(act_high, dtype=torch.float32).to(self.device).reshape(act_dim)
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError("SAC needs finite action bounds")
        self._low_np, self._high_np = low.cpu().numpy(), high.cpu().numpy()
        self.act_scale = (high - low) / 2  # [A]
        self.act_bias = (high + low) / 2  # [A]

        self._obs_index: torch.Tensor | None = None
        net_obs_dim = obs_dim
        if obs_dims is not None and tuple(obs_dims) != tuple(range(obs_dim)):
            self._obs_index = torch.as_tensor(list(obs_dims), dtype=torch.long, device=self.device)
            net_obs_dim = len(obs_dims)
        self.actor = SquashedGaussianActor(net_obs_dim, act_dim, cfg.hidden, cfg.layers).to(
            self.device
        )
        self.critic = EnsembleMLP(
            cfg.critics, net_obs_dim + act_dim, 1, cfg.hidden, cfg.layers, activation=nn.ReLU
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.autotune_alpha
        )
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)

        self.actor_opt = _adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = _adam(self.critic.parameters(), cfg.lr)
        self.alpha_opt = _adam([self.log_alpha], cfg.lr)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self.updates = 0

    # ---- helpers -------------------------------------------------------------------------------

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def _net_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, O]`` -> ``[B, O']``: the dims the networks see."""
        return obs if self._obs_index is None else obs.index_select(-1, self._obs_index)

    def to_env_action(self, a: torch.Tensor) -> torch.Tensor:
        """``[..., A]`` normalised action in ``[-1, 1]`` -> env units."""
        return a * self.act_scale + self.act_bias

    def to_unit_action(self, a: torch.Tensor) -> torch.Tensor:
        """``[..., A]`` env-unit action -> normalised ``[-1, 1]``."""
        return (a - self.act_bias) / self.act_scale

    def q_values(
        self, obs: torch.Tensor, act_unit: torch.Tensor, *, target: bool = False
    ) -> torch.Tensor:
        """Every critic: ``obs [B, O]``, normalised ``act_unit [B, A]`` -> ``[C, B]`` (float32,
        ``C = critics``)."""
        net = self.critic_target if target else self.critic
        with self._autocast():
            return net(torch.cat([self._net_obs(obs), act_unit], dim=-1)).squeeze(-1).float()

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: ``obs [B, O]`` -> normalised ``a [B, A]``, ``log_prob [B]``."""
        noise = self._noise((obs.shape[0], self.act_dim))
        with self._autocast():
            return self.actor.sample(self._net_obs(obs), noise)

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

    # ---- acting --------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """``obs [B, O]`` -> action ``[B, A]`` in env units; ``tanh(mean)`` when deterministic."""
        obs = obs.to(self.device, torch.float32)
        if deterministic:
            with self._autocast():
                a = torch.tanh(self.actor(self._net_obs(obs))[0])
        else:
            a = self.policy(obs)[0]
        return self.to_env_action(a)

    @torch.no_grad()
    def state_value(self, obs: np.ndarray) -> float:
        """The critics' estimate at one observation ``[O]`` under the deterministic policy:
        ``min_i Q_i(s, tanh(mean(s)))`` (a soft Q: it includes the entropy bonus of the stochastic
        policy's future steps, small once ``alpha`` has decayed). No random draw."""
        o = torch.as_tensor(np.asarray(obs, np.float32), device=self.device).unsqueeze(0)
        with self._autocast():
            a = torch.tanh(self.actor(self._net_obs(o))[0])
        return float(self.q_values(o, a).min(0).values[0])

    def act_one(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """One env observation ``[O]`` -> float32 action ``[A]`` in env units, clipped to the
        bounds (guards against rounding at the edges of ``tanh``)."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32)).unsqueeze(0)
        action = self.act(obs_t, deterministic)[0].cpu().numpy()
        return np.clip(action, self._low_np, self._high_np).astype(np.float32)

    # ---- learning ------------------------------------------------------------------------------

    def update(
        self, batch: Batch, target: torch.Tensor | CriticTargets | None = None
    ) -> dict[str, float]:
        """One SAC gradient step: :meth:`update_critic`, :meth:`update_actor`,
        :meth:`update_targets`, in that order.

        ``batch``: obs ``[B, O]``, act ``[B, A]`` (env units), reward ``[B]``, next_obs ``[B, O]``,
        terminated ``[B]``; moved to the learner's device if it is not there already.
        ``target``: optional ``[B]`` critic regression target replacing :meth:`td_target`
        (STEVE's weighted target), or :class:`CriticTargets` rows the critics regress on instead of
        the batch (MVE's real and imagined rows); the actor always trains on ``batch.obs``.
        Returns ``critic_loss``, ``actor_loss``, ``alpha_loss``, ``alpha``, ``entropy``,
        ``q_mean`` (one device sync).
        """
        batch = self._on_device(batch)
        critic = self.update_critic(batch, target)
        actor = self.update_actor(batch.obs)
        self.update_targets()
        stats = torch.stack([critic["critic_loss"], *actor.values(), critic["q_mean"]]).tolist()
        keys = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean")
        return dict(zip(keys, stats, strict=True))

    def _on_device(self, batch: Batch) -> Batch:
        return Batch(*(x.to(self.device, torch.float32, non_blocking=True) for x in batch))

    def update_critic(
        self, batch: Batch, target: torch.Tensor | CriticTargets | None = None
    ) -> dict[str, torch.Tensor]:
        """One gradient step of the critics on ``0.5 * mean (Q_i - y)^2`` summed over ``i``
        (softlearning's loss), ``y`` = ``target [B]`` or :meth:`td_target`; or, with
        :class:`CriticTargets`, on their weighted rows. Returns detached scalar tensors
        ``critic_loss``, ``q_mean`` (over the batch's own rows; no device sync)."""
        if isinstance(target, CriticTargets):
            rows = CriticTargets(*(x.to(self.device) for x in target))
            q = self.q_values(rows.obs, self.to_unit_action(rows.act))  # [C, N]
            err = (q - rows.target.detach()).pow(2)
            critic_loss = 0.5 * (err * rows.weight).sum(dim=1).sum()
            q = q[:, : batch.obs.shape[0]]
        else:
            y = self.td_target(batch) if target is None else target.to(self.device).detach()
            q = self.q_values(batch.obs, self.to_unit_action(batch.act))  # [C, B]
            critic_loss = 0.5 * (q - y).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        return {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}

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

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak step ``theta_targ <- (1 - tau) theta_targ + tau theta`` (one fused op over all
        tensors); counts one update."""
        torch._foreach_lerp_(self._target_params, self._critic_params, self.cfg.tau)
        self.updates += 1

    # ---- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            # the trial's CPU generator is saved by its owner (RunContext.generator_state); a
            # device generator the learner seeded for itself is the learner's to save
            "generator": None if self._shared_generator else self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        if state["generator"] is not None and not self._shared_generator:
            self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
