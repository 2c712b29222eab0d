"""``dqn``: Deep Q-Networks (Mnih et al. 2015) with the Double-DQN target (van Hasselt et al.
2016), the suite's model-free reference for discrete actions, as ``sac`` is for continuous ones.

Defaults: CleanRL's ``dqn.py`` (its CartPole-v1 settings). Per env step:

1. act epsilon-greedily, epsilon falling linearly from ``start_e`` to ``end_e`` over
   ``exploration_fraction`` of the trial's budget (CleanRL's ``linear_schedule``);
2. store the transition (``terminated`` stops bootstrapping; time-limit truncations bootstrap);
3. after ``learning_starts`` steps, every ``train_frequency`` steps: one gradient step on a uniform
   minibatch, regressing ``Q(s, a)`` on ``r + gamma (1 - terminated) Q_targ(s', a*)`` with
   ``a* = argmax_a Q(s', a)`` (Double DQN; ``double=false``: ``max_a Q_targ(s', a)``, the Nature
   DQN and CleanRL target);
4. every ``target_network_frequency`` steps: ``Q_targ <- tau Q + (1 - tau) Q_targ`` (``tau = 1``:
   a hard copy).

Evaluation is greedy (CleanRL's ``evaluate`` keeps epsilon 0.05; the suite's driver asks every
plugin for its deterministic policy). ``state_value(s) = max_a Q(s, a)``, the greedy policy's value.

Logged: ``td_loss``, ``q_mean`` (mean ``Q(s, a)`` over the batch) and ``epsilon`` at each update.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.api import (
    AlgoConfig,
    Algorithm,
    Capability,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    RunContext,
    Transition,
    UnitInterval,
    linear_schedule,
)
from algorithms.learners.base import adam, mlp_widths
from algorithms.replay.buffer import ReplayBuffer
from envs.spec import TaskSpec

#: CleanRL's ``total_timesteps`` for CartPole-v1: the exploration schedule's length when the trial
#: has no budget (``RunContext.total_steps == 0``: a plugin built outside the driver).
CLEANRL_TOTAL_STEPS = 500_000


@dataclass(frozen=True)
class DQNConfig(AlgoConfig):
    """DQN hyperparameters; defaults from CleanRL's ``dqn.py`` (CartPole-v1), Mnih et al. 2015's
    Atari values named where they differ."""

    learning_rate: PositiveFloat = 2.5e-4
    """Adam learning rate (CleanRL 2.5e-4; Mnih: RMSProp 2.5e-4)."""
    buffer_size: PositiveInt = 10_000
    """Replay capacity (CleanRL 10k; Mnih 1M). Capped at the trial's step budget."""
    gamma: PositiveFraction = 0.99
    """Discount (CleanRL and Mnih: 0.99)."""
    tau: PositiveFraction = 1.0
    """Target update rate at each target update (CleanRL 1.0: a hard copy, as Mnih)."""
    target_network_frequency: PositiveInt = 500
    """Env steps between target updates (CleanRL 500; Mnih 10k)."""
    batch_size: PositiveInt = 128
    """Minibatch size (CleanRL 128; Mnih 32)."""
    start_e: UnitInterval = 1.0
    """Exploration epsilon at the first step (CleanRL and Mnih: 1)."""
    end_e: UnitInterval = 0.05
    """Exploration epsilon after the schedule (CleanRL 0.05; Mnih 0.1)."""
    exploration_fraction: PositiveFraction = 0.5
    """Share of the trial's budget over which epsilon falls linearly from ``start_e`` to
    ``end_e`` (CleanRL 0.5 of ``total_timesteps``; Mnih: the first 1M frames)."""
    learning_starts: NonNegativeInt = 10_000
    """Env steps before the first update (CleanRL 10k; Mnih 50k)."""
    train_frequency: PositiveInt = 10
    """Env steps between gradient steps (CleanRL 10; Mnih 4)."""
    hidden: tuple[PositiveInt, ...] = (120, 84)
    """Hidden ReLU layer widths of the Q network (CleanRL's ``QNetwork``: 120, 84)."""
    double: bool = True
    """Double-DQN target (van Hasselt et al. 2016: the online network picks ``a*``, the target
    network scores it). ``false``: ``max_a Q_targ(s', a)``, the Nature DQN and CleanRL form."""
    huber: bool = False
    """Huber (smooth L1) TD loss, Mnih et al.'s error clipping; ``false``: CleanRL's MSE."""


class DQNAgent(Algorithm):
    """The ``dqn`` plugin: a Q network, its target and a uniform replay buffer."""

    name = "dqn"
    Config = DQNConfig
    requires = frozenset({Capability.DISCRETE_ACTIONS})

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        cfg: DQNConfig = config  # type: ignore[assignment]
        self.cfg = cfg
        self.device = ctx.device
        self.q = mlp_widths(task.obs_dim, task.act_dim, cfg.hidden).to(
            self.device
        )  # [B, O] -> [B, n]
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optim = adam(self.q.parameters(), cfg.learning_rate)
        self.buffer = ReplayBuffer.for_trial(cfg.buffer_size, task.obs_dim, 1, ctx)
        budget = ctx.total_steps if ctx.total_steps > 0 else CLEANRL_TOTAL_STEPS
        self.exploration_steps = max(1, int(cfg.exploration_fraction * budget))
        self.env_steps = 0
        self.value_discount = cfg.gamma

    # ------------------------------------------------------------------ acting
    def epsilon(self) -> float:
        """CleanRL's ``linear_schedule`` at the current env step."""
        c = self.cfg
        return linear_schedule(c.start_e, c.end_e, self.exploration_steps, self.env_steps)

    @torch.no_grad()
    def _q(self, obs: np.ndarray) -> torch.Tensor:
        """``obs [O]`` -> ``Q(s, .) [n]``."""
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.q(x[None])[0]

    def act(self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None) -> int:
        """Epsilon-greedy in training, greedy in evaluation: an action index."""
        if explore and self.ctx.np_rng.random() < self.epsilon():
            return int(self.ctx.np_rng.integers(self.task.act_dim))
        return int(self._q(obs).argmax())

    def state_value(self, obs: np.ndarray) -> float:
        """``max_a Q(s, a)``: the greedy policy's discounted return as the network sees it."""
        return float(self._q(obs).max())

    # ------------------------------------------------------------------ learning
    def observe(self, transition: Transition) -> None:
        self.buffer.add(transition)
        self.env_steps += 1

    def update(self) -> Mapping[str, float]:
        """A gradient step every ``train_frequency`` steps after ``learning_starts``; the target
        update every ``target_network_frequency`` steps. CleanRL's counting: ``t`` is the 0-based
        index of the step just stored (its loop variable ``global_step``)."""
        c, t = self.cfg, self.env_steps - 1
        if t <= c.learning_starts:
            return {}
        metrics: dict[str, float] = {}
        if t % c.train_frequency == 0:
            metrics = self._train_step()
        if t % c.target_network_frequency == 0:
            with torch.no_grad():
                online, target = list(self.q.parameters()), list(self.q_target.parameters())
                torch._foreach_lerp_(target, online, c.tau)
        return metrics

    def _train_step(self) -> dict[str, float]:
        c = self.cfg
        b = self.buffer.sample(c.batch_size)
        act = b.act[:, 0].long()  # [B] indices (stored as float, the driver's record)
        with torch.no_grad():
            q_next_target = self.q_target(b.next_obs)  # [B, n]
            if c.double:
                a_star = self.q(b.next_obs).argmax(-1, keepdim=True)
                q_next = q_next_target.gather(-1, a_star)[:, 0]
            else:
                q_next = q_next_target.max(-1).values
            target = b.reward + c.gamma * (1.0 - b.terminated) * q_next  # [B]
        q_sa = self.q(b.obs).gather(-1, act[:, None])[:, 0]  # [B]
        loss = F.smooth_l1_loss(q_sa, target) if c.huber else F.mse_loss(q_sa, target)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        q_mean = float(q_sa.detach().mean())
        return {"td_loss": float(loss.detach()), "q_mean": q_mean, "epsilon": self.epsilon()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optim": self.optim.state_dict(),
            "buffer": self.buffer.state_dict(),
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optim.load_state_dict(state["optim"])
        self.buffer.load_state_dict(state["buffer"])
        self.env_steps = int(state["env_steps"])
