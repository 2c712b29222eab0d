"""What the off-policy actor-critic learners share (SAC: :mod:`algorithms.learners.sac`; DDPG:
:mod:`algorithms.learners.ddpg`): action scaling, the critic ensemble and its targets, the critic
step on one-step or caller-supplied targets, the Polyak step, acting, checkpoints.

A learner only sees tensors. Actor and critics work in the normalised box ``[-1, 1]^A``;
:meth:`ActorCriticLearner.act` returns env units and :meth:`ActorCriticLearner.update` takes a
batch whose ``act`` is in env units, so callers never rescale. The critics are one
:class:`~algorithms.models.layers.EnsembleMLP` (``critics`` members), so every Q function runs in
one batched op per layer (the target critics likewise).

The model-based agents (:mod:`algorithms.agents.model_based_sac`) drive either learner through
this surface: :meth:`~ActorCriticLearner.rollout_policy` is the policy their imagined rollouts
follow, :attr:`~ActorCriticLearner.alpha` its entropy weight (0 for DDPG), and
:meth:`~ActorCriticLearner.update` takes their targets.
"""

from __future__ import annotations

import copy
import itertools
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from algorithms.models.layers import EnsembleMLP
from algorithms.replay.buffer import Batch

__all__ = ["ActorCriticLearner", "CriticTargets", "adam", "mlp"]


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for every tensor: ~5x less optimizer time at SAC's
    sizes on CPU than the per-tensor loop, same arithmetic), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - depends on the build / device
        return torch.optim.Adam(params, lr=lr)


def mlp(in_features: int, out_features: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output."""
    return mlp_widths(in_features, out_features, (hidden,) * layers)


def mlp_widths(in_features: int, out_features: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Hidden ReLU layers of the given ``widths``, then a linear output."""
    dims = [in_features, *widths]
    mods: list[nn.Module] = []
    for i, o in itertools.pairwise(dims):
        mods += [nn.Linear(i, o), nn.ReLU()]
    mods.append(nn.Linear(dims[-1], out_features))
    return nn.Sequential(*mods)


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
    target_n)^2`` (``1 / B`` on every row is the plain mean)."""


class ActorCriticLearner(ABC):
    """Networks, optimisers and gradient steps of an off-policy actor-critic learner; knows
    nothing about environments. A subclass builds its actor (:meth:`make_actor`) and says how
    it acts, what its TD target is and how its actor learns.

    Args:
        obs_dim, act_dim: sizes ``O`` and ``A``.
        act_low, act_high: ``[A]`` env action bounds (finite).
        cfg: hyperparameters (``hidden``, ``layers``, ``critics``, ``gamma``, ``tau``, ``bf16``
            and the subclass's own).
        device: where networks live and :meth:`update` computes.
        generator: CPU ``torch.Generator`` for the learner's noise (never the global RNG). On a
            non-CPU device a device generator is seeded from it once, so sampling stays on device.
        obs_dims: the observation dims the networks see (``None``: all ``O``). Callers keep
            passing full ``[B, O]`` observations; the learner selects these dims itself (the
            locomotion tasks' root x is left out: ``TaskSpec.policy_obs_dims``).
    """

    #: ``critic_loss``, then the keys of :meth:`update_actor`, then ``q_mean``.
    name = "actor-critic"

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: np.ndarray | torch.Tensor,
        act_high: np.ndarray | torch.Tensor,
        cfg: Any,
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
            raise ValueError(f"{self.name} needs finite action bounds")
        self._low_np, self._high_np = low.cpu().numpy(), high.cpu().numpy()
        self.act_scale = (high - low) / 2  # [A]
        self.act_bias = (high + low) / 2  # [A]

        self._obs_index: torch.Tensor | None = None
        net_obs_dim = obs_dim
        if obs_dims is not None and tuple(obs_dims) != tuple(range(obs_dim)):
            self._obs_index = torch.as_tensor(list(obs_dims), dtype=torch.long, device=self.device)
            net_obs_dim = len(obs_dims)
        self.actor = self.make_actor(net_obs_dim).to(self.device)
        self.critic = EnsembleMLP(
            cfg.critics, net_obs_dim + act_dim, 1, cfg.hidden, cfg.layers, activation=nn.ReLU
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self.updates = 0

    # ---- what a subclass says ----------------------------------------------------------------

    @abstractmethod
    def make_actor(self, net_obs_dim: int) -> nn.Module:
        """The actor network (built before the critics, on the global RNG's stream)."""

    @abstractmethod
    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [B, O]`` -> the evaluation policy's normalised action ``[B, A]``."""

    @abstractmethod
    def explore_action(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [B, O]`` -> the training policy's normalised action ``[B, A]`` (with noise)."""

    @abstractmethod
    def rollout_policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy imagined rollouts follow (value expansion): ``obs [B, O]`` -> normalised
        ``a [B, A]`` and ``log pi(a|s) [B]`` (zeros for a deterministic policy)."""

    @abstractmethod
    def td_target(self, batch: Batch) -> torch.Tensor:
        """One-step target ``[B]`` of the critics on ``batch``."""

    @abstractmethod
    def update_actor(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step of the actor (and its extras) at states ``obs [B, O]``; returns
        detached scalar tensors (no device sync)."""

    @abstractmethod
    def aggregate_q(self, q: torch.Tensor) -> torch.Tensor:
        """``[C, B]`` -> ``[B]``: the critics' combined value (SAC: min; DDPG: mean)."""

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy weight of the soft targets (a detached scalar tensor; 0: none)."""
        return torch.zeros((), device=self.device)

    # ---- helpers -------------------------------------------------------------------------------

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

    # ---- acting --------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """``obs [B, O]`` -> action ``[B, A]`` in env units."""
        obs = obs.to(self.device, torch.float32)
        a = self.deterministic_action(obs) if deterministic else self.explore_action(obs)
        return self.to_env_action(a)

    def act_one(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """One env observation ``[O]`` -> float32 action ``[A]`` in env units, clipped to the
        bounds (guards against rounding at the edges of ``tanh`` and against exploration noise)."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32)).unsqueeze(0)
        action = self.act(obs_t, deterministic)[0].cpu().numpy()
        return np.clip(action, self._low_np, self._high_np).astype(np.float32)

    @torch.no_grad()
    def state_value(self, obs: np.ndarray) -> float:
        """The critics' combined estimate at one observation ``[O]`` under the deterministic
        policy (SAC's is a soft Q: it includes the entropy bonus of the stochastic policy's future
        steps, small once ``alpha`` has decayed). No random draw."""
        o = torch.as_tensor(np.asarray(obs, np.float32), device=self.device).unsqueeze(0)
        return float(self.aggregate_q(self.q_values(o, self.deterministic_action(o)))[0])

    # ---- learning ------------------------------------------------------------------------------

    def update(
        self, batch: Batch, target: torch.Tensor | CriticTargets | None = None
    ) -> dict[str, float]:
        """One gradient step: :meth:`update_critic`, :meth:`update_actor`,
        :meth:`update_targets`, in that order.

        ``batch``: obs ``[B, O]``, act ``[B, A]`` (env units), reward ``[B]``, next_obs ``[B, O]``,
        terminated ``[B]``; moved to the learner's device if it is not there already.
        ``target``: optional ``[B]`` critic regression target replacing :meth:`td_target`
        (STEVE's weighted target), or :class:`CriticTargets` rows the critics regress on instead of
        the batch (MVE's real and imagined rows); the actor always trains on ``batch.obs``.
        Returns ``critic_loss``, the actor's statistics, ``q_mean`` (one device sync).
        """
        batch = self._on_device(batch)
        critic = self.update_critic(batch, target)
        actor = self.update_actor(batch.obs)
        self.update_targets()
        stats = torch.stack([critic["critic_loss"], *actor.values(), critic["q_mean"]]).tolist()
        keys = ("critic_loss", *actor.keys(), "q_mean")
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
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            # the trial's CPU generator is saved by its owner (RunContext.generator_state); a
            # device generator the learner seeded for itself is the learner's to save
            "generator": None if self._shared_generator else self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if state["generator"] is not None and not self._shared_generator:
            self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])

    # the optimisers are the subclass's (their learning rates differ)
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
