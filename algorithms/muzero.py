"""``muzero``: MuZero (Schrittwieser et al. 2020) for discrete actions, muzero-general's CartPole
configuration (``games/cartpole.py``) ported to gymnasium 1.x and run synchronously.

The model (:class:`~algorithms.models.muzero_net.MuZeroNet`: representation ``h``, dynamics
``g``, prediction ``f``) is trained only through reward, value and policy targets: it is
value-equivalent, never asked to reconstruct an observation. Per env step:

1. **act**: ``s = h(o)``, then :func:`~algorithms.planners.mcts.search` (pUCT over ``g`` and
   ``f``, ``num_simulations``, root Dirichlet noise in training); the action is drawn from the
   root's visit counts at the schedule's temperature (greedy in evaluation; ``eps_greedy``:
   LightZero's epsilon-greedy over the most visited action instead). The visit distribution and
   the root value are stored with the step (``gumbel``: Gumbel MuZero's search, its Sequential
   Halving action and completed-Q policy target instead);
2. **learn**, once the first episode has ended: ``train_ratio`` gradient steps per env step on
   ``batch_size`` positions drawn by prioritized replay (``P(i) ~ p_i^alpha``, importance weights
   normalised by their maximum). From each position ``t`` the model is unrolled ``K =
   num_unroll_steps`` steps on the real actions, the hidden state's gradient halved at each step
   and each unrolled step's loss divided by the steps left in the window, against:

   - value ``z_{t+k}``: the ``td_steps``-step discounted return plus ``discount^n`` times the
     value at ``t+k+n``, from the current network (``reanalyse``: muzero-general's
     ``use_last_model_value``) or the stored root value; 0 past the episode end;
   - reward ``u_{t+k}``: the reward of the step into ``t+k`` (``k >= 1``; the pseudocode's
     off-by-one avoided: no reward loss at ``k = 0``); 0 past the end;
   - policy ``pi_{t+k}``: the stored visit distribution; uniform past the end (muzero-general).
     With ``reanalyse_policy_interval``, MuZero Reanalyze: every that many gradient steps the
     whole replay is searched again with the current network (one batched search) and the
     fresh visit distributions and root values replace the stored ones.

   Value and reward are categorical over muzero-general's support (21 integers of
   :func:`~algorithms.models.twohot.muzero_h` space), trained with the cross-entropy against
   their two-hot targets. Priorities become ``|v_pred - z|^alpha`` of the unrolled positions.

Deviations (each with its config switch): time-limit truncations bootstrap from the value of the
last next observation (``bootstrap_truncated``; muzero-general treats every game end as
terminal); prioritized sampling is over positions (the paper's ``P(i)``), where muzero-general
draws a game by its priority and then a position in it; the temperature schedule counts this
agent's training steps (muzero-general: its trainer's, which run asynchronously).

Logged per update: ``value_loss``, ``reward_loss``, ``policy_loss``, ``total_loss``, ``lr``; per
evaluation: the value-equivalence probe on the evaluation episodes (TD-MPC2's names: for ``k`` in
``probe_horizons``, ``ve_reward_err_h{k}``, ``ve_value_err_h{k}``, ``ve_latent_err_h{k}`` and
``ve_policy_err_h{k}``, the total-variation distance between the policy at the rolled state and
at the encoding of the real one), and ``root_value``, the mean search value of the training steps
since the last evaluation; with reanalysis, ``reanalyse_policy_tv``, the mean total-variation
distance between the stored and the fresh policy targets at the last refresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

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
    RunContext,
    Transition,
    UnitInterval,
    linear_schedule,
)
from algorithms.models.muzero_net import MuZeroNet
from algorithms.planners.mcts import MCTSConfig, SearchResult, search, select_action
from algorithms.replay.sequence import SequenceReplay
from envs.spec import TaskSpec


@dataclass(frozen=True)
class MuZeroConfig(AlgoConfig):
    """MuZero hyperparameters: muzero-general ``games/cartpole.py`` unless a docstring says
    otherwise."""

    # --- search
    num_simulations: PositiveInt = 50
    """Simulations per move (cartpole.py: 50)."""
    discount: PositiveFraction = 0.997
    """Discount of rewards, search backups and value targets (cartpole.py: 0.997)."""
    pb_c_base: PositiveFloat = 19652.0
    """pUCT ``c_base`` (cartpole.py and the pseudocode: 19652)."""
    pb_c_init: PositiveFloat = 1.25
    """pUCT ``c_init`` (cartpole.py and the pseudocode: 1.25)."""
    root_dirichlet_alpha: PositiveFloat = 0.25
    """Root noise concentration (cartpole.py: 0.25)."""
    root_exploration_fraction: UnitInterval = 0.25
    """Root noise weight (cartpole.py: 0.25)."""
    eval_root_noise: bool = False
    """Root Dirichlet noise in evaluation searches too (the action still the most visited).
    muzero-general's test mode does so (``self_play.py``: ``MCTS.run(..., True)`` with
    temperature 0: "the best action (no exploration)" with the noise on); False: the suite's
    noiseless greedy evaluation, as every plugin's ``explore=False`` policy."""
    temperatures: tuple[NonNegativeFloat, ...] = (1.0, 0.5, 0.25)
    """Visit-count temperatures in training, switched at ``temperature_steps`` (cartpole.py
    ``visit_softmax_temperature_fn``: 1, 0.5, 0.25)."""
    temperature_steps: tuple[NonNegativeInt, ...] = (5000, 7500)
    """Training steps at which the next temperature starts (cartpole.py: 50% and 75% of its
    10k ``training_steps``)."""
    gumbel: bool = False
    """Gumbel MuZero (Danihelka et al. 2022, ICLR; DeepMind's mctx ``gumbel_muzero_policy``):
    Sequential Halving over Gumbel-sampled root actions, the deterministic interior selection,
    the action it picks (Gumbel draws in training, none in evaluation) and the policy target
    ``softmax(logits + sigma(completed Q))`` instead of the visit distribution
    (:mod:`algorithms.planners.mcts`); no Dirichlet noise and no temperature schedule.
    ``eps_greedy`` still replaces that action in training when on. False: the paper's pUCT."""
    gumbel_max_considered: PositiveInt = 16
    """Gumbel: root actions sampled (mctx ``max_num_considered_actions``: 16; at most ``A``)."""
    gumbel_c_visit: PositiveFloat = 50.0
    """Gumbel: ``c_visit`` of ``sigma`` (the paper's eq. 8 and mctx ``maxvisit_init``: 50)."""
    gumbel_c_scale: PositiveFloat = 0.1
    """Gumbel: ``c_scale`` of ``sigma`` (the paper and mctx ``value_scale``: 0.1)."""
    eps_greedy: bool = False
    """LightZero's ``eps_greedy_exploration_in_collect`` (``lzero/policy/muzero.py``: off by
    default): in training, act on the most visited action, replaced with probability ``eps`` by
    a uniform random one, ``eps`` falling linearly from ``eps_start`` to ``eps_end`` over
    ``eps_decay_steps`` env steps (root noise stays on; the stored policy target is still the
    visit distribution); the temperature schedule is then unused. False: muzero-general's
    visit-count sampling."""
    eps_start: UnitInterval = 1.0
    """First ``eps`` of ``eps_greedy`` (LightZero ``eps.start``: 1.0)."""
    eps_end: UnitInterval = 0.05
    """Last ``eps`` of ``eps_greedy`` (LightZero ``eps.end``: 0.05)."""
    eps_decay_steps: PositiveInt = 100_000
    """Env steps from ``eps_start`` to ``eps_end`` (LightZero ``eps.decay``: 1e5 by default,
    2e4 in some of its configs)."""
    eps_duration_mu: NonNegativeFloat = 0.0
    """0: ``eps_greedy``'s random actions last one step (LightZero). Above 1: temporally-extended
    eps-greedy (Dabney et al. 2021, Algorithm 1), the random action held for ``n ~ zeta(mu)``
    steps, ``P(n) ~ n^-mu`` (the paper's ``mu``: 2), no new draw while it is held."""
    eps_duration_unit: PositiveInt = 1
    """Decisions per unit of ``eps_greedy``'s durations: a random action is held for
    ``eps_duration_unit x n`` decisions (``n = 1`` without ``eps_duration_mu``). 1: the paper's
    and LightZero's. Above 1 (a deviation, the suite's): with ``action_repeat`` 1 it explores as
    a ``k``-step repeat does (random actions held ``k x n`` env steps) while every searched
    action is still taken for one env step."""
    action_repeat: PositiveInt = 1
    """Env steps each decision is held for (the paper's Atari agents: 4, the frame skip of
    Mnih et al. 2015; cartpole.py: 1). One search per decision, one stored step per decision
    with the rewards summed (``discount``, ``td_steps``, ``num_unroll_steps``, the probe's
    horizons and ez-greedy's durations count decisions); the budget, ``eps_decay_steps`` and
    ``train_ratio`` still count env steps, so a decision gets ``k x train_ratio`` gradient
    steps. 1: every env step is a decision."""
    # --- network
    encoding: PositiveInt = 8
    """Hidden-state size (cartpole.py ``encoding_size``: 8)."""
    representation_layers: tuple[PositiveInt, ...] = ()
    """Hidden widths of ``h`` (cartpole.py ``fc_representation_layers``: none)."""
    dynamics_layers: tuple[PositiveInt, ...] = (16,)
    """Hidden widths of ``g``'s state network (``fc_dynamics_layers``: 16)."""
    reward_layers: tuple[PositiveInt, ...] = (16,)
    """Hidden widths of the reward head (``fc_reward_layers``: 16)."""
    value_layers: tuple[PositiveInt, ...] = (16,)
    """Hidden widths of the value head (``fc_value_layers``: 16)."""
    policy_layers: tuple[PositiveInt, ...] = (16,)
    """Hidden widths of the policy head (``fc_policy_layers``: 16)."""
    support_size: PositiveInt = 10
    """Value and reward supports: the integers in ``[-support_size, support_size]``
    (cartpole.py: 10)."""
    # --- training
    batch_size: PositiveInt = 128
    """Positions per gradient step (cartpole.py: 128)."""
    num_unroll_steps: PositiveInt = 10
    """``K``, model steps unrolled per position (cartpole.py: 10)."""
    td_steps: PositiveInt = 50
    """``n`` of the value targets (cartpole.py: 50)."""
    lr: PositiveFloat = 0.02
    """Adam's initial learning rate (cartpole.py ``lr_init``: 0.02)."""
    lr_decay_rate: PositiveFraction = 0.8
    """``lr = lr * lr_decay_rate ** (train_step / lr_decay_steps)`` (cartpole.py: 0.8 in most
    of its versions, 0.9 at commit 267285d)."""
    lr_decay_steps: PositiveInt = 1000
    """(cartpole.py: 1000, over its 10k gradient steps: the rate ends at 0.8^10 of ``lr``). The
    standard Acrobot entry stretches that total decay over its ~45k gradient steps (4500);
    what that did to each seed: docs/algorithms/muzero.md."""
    weight_decay: NonNegativeFloat = 1e-4
    """Adam's L2 weight decay (cartpole.py: 1e-4)."""
    value_loss_weight: PositiveFloat = 1.0
    """Weight of the value loss (cartpole.py: 1; the paper's reanalyse runs 0.25)."""
    train_ratio: PositiveFloat = 1.5
    """Gradient steps per env step once the first episode has ended (cartpole.py ``ratio``:
    1.5, which its asynchronous trainer holds on average)."""
    replay_capacity: PositiveInt = 100_000
    """Stored steps (cartpole.py: 500 games of up to 500 steps). Capped at the budget."""
    prioritized: bool = True
    """Prioritized replay (cartpole.py ``PER``: true); ``false``: uniform positions."""
    per_alpha: NonNegativeFloat = 0.5
    """Priority exponent (cartpole.py ``PER_alpha``: 0.5)."""
    reanalyse: bool = True
    """Bootstrap value targets with the current network's value (cartpole.py
    ``use_last_model_value``: true); ``false``: the stored search root values."""
    reanalyse_policy_interval: NonNegativeInt = 0
    """Gradient steps between two refreshes of every stored policy target (MuZero Reanalyze,
    Schrittwieser et al. 2021): each stored observation searched again with the current
    network, its visit distribution and root value replacing the stored ones. EfficientZero
    reanalyses 99% of the sampled positions' policies (``revisit_policy_search_rate`` 0.99)
    with a target network refreshed every 200 gradient steps (``target_model_interval``), so
    its targets are at most ~200 steps stale; the whole replay searched every ``interval``
    steps bounds the staleness the same way in one batched search. 0: the self-play targets
    as stored (muzero-general)."""
    reanalyse_policy_noise: bool = True
    """Root Dirichlet noise in the reanalysis search (EfficientZero's ``_prepare_policy_re``:
    on); false: noiseless fresh targets."""
    off_policy_correction: bool = False
    """EfficientZero's off-policy correction: a position's value target sums fewer real rewards
    the older it is, ``l = clip(td_steps - age // (auto_td_steps_ratio x budget), 1,
    td_steps)``, its age and the budget counted in stored steps (EfficientZero
    ``core/reanalyze_worker.py``, ``_prepare_reward_value``, with ``config/atari``'s
    ``auto_td_steps = auto_td_steps_ratio x training_steps``, whose 100k gradient steps equal
    its budget of 100k transitions; its ``td_steps`` is 5, the clip's upper end); false: every
    target sums ``td_steps`` rewards (MuZero)."""
    auto_td_steps_ratio: PositiveFraction = 0.3
    """Age, as a fraction of the budget, per step the correction takes off (EfficientZero's
    ``auto_td_steps_ratio``: 0.3)."""
    bootstrap_truncated: bool = True
    """At a time-limit end, bootstrap with the value of the last next observation; ``false``:
    every episode end is terminal (muzero-general)."""
    # --- EfficientZero (Ye et al. 2021), off by default
    consistency_coef: NonNegativeFloat = 0.0
    """Weight of EfficientZero's temporal-consistency loss (``config/atari/__init__.py``
    ``consistency_coeff``: 2): the negative cosine similarity between the projected model state
    ``g^k(h(o_t))`` (through the prediction head) and the detached projection of ``h(o_{t+k})``,
    for ``k = 1..K`` inside the episode; 0: MuZero (no projector is built)."""
    proj_hid: PositiveInt = 32
    """Projector width (EfficientZero's Atari ``proj_hid``: 1024, for a 2304-dim latent;
    scaled to CartPole's 8-dim hidden state)."""
    proj_out: PositiveInt = 32
    """Projection size (Atari ``proj_out`` and ``pred_out``: 1024; scaled as ``proj_hid``)."""
    pred_hid: PositiveInt = 16
    """Prediction-head width (Atari ``pred_hid``: 512, half of ``proj_out``, kept here)."""
    value_prefix: bool = False
    """EfficientZero's value prefix: an LSTM over the unrolled states predicts the sum of the
    rewards since its last reset instead of each reward (the search takes an edge's reward as
    the difference of two prefixes); false: MuZero's reward head."""
    lstm_hidden: PositiveInt = 64
    """The value-prefix LSTM's size (EfficientZero's Atari ``lstm_hidden_size``: 512, for a
    2304-dim latent; scaled to CartPole's 8)."""
    lstm_horizon_len: PositiveInt = 5
    """Unrolled steps between two resets of the prefix and the LSTM state (EfficientZero's
    ``lstm_horizon_len``: 5), in training and in the search."""
    # --- diagnostics
    probe_horizons: tuple[PositiveInt, ...] = (1, 2, 3, 5, 10)
    """``k`` of the value-equivalence probe (``ve_*_err_h{k}``), as ``tdmpc2``'s."""
    probe_capacity: PositiveInt = 10_000
    """Evaluation steps kept for the probe between two evaluations."""


class MuZeroAgent(Algorithm):
    """The ``muzero`` plugin (module docstring)."""

    name = "muzero"
    Config = MuZeroConfig
    requires = frozenset({Capability.DISCRETE_ACTIONS})

    @classmethod
    def check_task(cls, task: TaskSpec, config: AlgoConfig) -> None:
        super().check_task(task, config)
        assert isinstance(config, MuZeroConfig)
        if config.eps_duration_mu and config.eps_duration_mu <= 1:
            raise ConfigError(
                f"muzero: eps_duration_mu={config.eps_duration_mu} is no zeta exponent; set 0 "
                "(one-step random actions) or a value above 1 (the ez-greedy paper's: 2)"
            )
        if config.eps_duration_unit > 1 and not config.eps_greedy:
            raise ConfigError(
                f"muzero: eps_duration_unit={config.eps_duration_unit} holds eps_greedy's random "
                "actions, which is off; set muzero.eps_greedy=true or eps_duration_unit=1"
            )
        temps, steps = config.temperatures, config.temperature_steps
        if len(temps) != len(steps) + 1 or list(steps) != sorted(steps):
            raise ConfigError(
                f"muzero: {len(temps)} temperatures need {len(temps) - 1} increasing "
                f"temperature_steps, got {list(steps)}; set both (e.g. temperatures=[1.0] "
                "temperature_steps=[])"
            )

    def __init__(self, task: TaskSpec, config: AlgoConfig, ctx: RunContext) -> None:
        super().__init__(task, config, ctx)
        c: MuZeroConfig = config  # type: ignore[assignment]
        self.cfg = c
        self.device = ctx.device
        self.n_actions = task.act_dim
        self.net = MuZeroNet(
            task.obs_dim,
            task.act_dim,
            c.encoding,
            c.representation_layers,
            c.dynamics_layers,
            c.reward_layers,
            c.value_layers,
            c.policy_layers,
            c.support_size,
        )
        if c.value_prefix:
            self.net.add_value_prefix(c.lstm_hidden, c.reward_layers, c.lstm_horizon_len)
        if c.consistency_coef > 0:
            self.net.add_projector(c.proj_hid, c.proj_out, c.pred_hid)
        self.net.to(self.device)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.search_cfg = MCTSConfig(
            c.num_simulations, c.discount, c.pb_c_base, c.pb_c_init, c.root_dirichlet_alpha,
            c.root_exploration_fraction, c.gumbel, c.gumbel_max_considered, c.gumbel_c_visit,
            c.gumbel_c_scale,
        )  # fmt: skip
        extras = {"policy": (task.act_dim,), "root_value": ()}
        self.replay = SequenceReplay.for_trial(
            c.replay_capacity, task.obs_dim, 1, ctx, extras=extras, act_dtype=np.int64
        )
        self.priority = np.zeros(self.replay.capacity)  # per ring slot; 0 until its episode ends
        self.probe = SequenceReplay(
            c.probe_capacity, task.obs_dim, 1, act_dtype=np.int64, drop_partial=False,
            device=self.device,
        )  # fmt: skip
        self.value_discount = c.discount ** (1.0 / c.action_repeat)  # per env step
        self.env_steps = 0
        self.train_steps = 0
        self.episodes_done = 0
        self._episode_len = 0  # steps of the running training episode
        self._owed = 0.0  # gradient steps owed by train_ratio
        self._last: tuple[np.ndarray, float] | None = None  # the training search's targets
        self._root_sum, self._root_count = 0.0, 0
        self._reanalyse_tv: float | None = None  # the last reanalysis's policy change
        self._held: tuple[int, int] = (0, 0)  # ez-greedy's random action and its steps left
        # action_repeat: per mode (True: training), the decision held and its env steps left,
        # and the running decision's first observation, action and reward summed so far
        self._repeat: dict[bool, tuple[int, int]] = {True: (0, 0), False: (0, 0)}
        self._acc: dict[bool, tuple[np.ndarray, np.ndarray, float] | None] = {
            True: None, False: None,
        }  # fmt: skip
        L = c.num_unroll_steps + 1 + c.td_steps
        self._disc = c.discount ** torch.arange(L, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ acting
    def temperature(self) -> float:
        """The schedule's temperature at the current training step."""
        i = int(np.searchsorted(np.asarray(self.cfg.temperature_steps), self.train_steps, "right"))
        return float(self.cfg.temperatures[i])

    def epsilon(self) -> float:
        """``eps_greedy``'s random-action probability at the current env step."""
        c = self.cfg
        return linear_schedule(c.eps_start, c.eps_end, c.eps_decay_steps, self.env_steps)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(1, -1)

    def act(self, obs: np.ndarray, *, explore: bool, info: Mapping[str, Any] | None = None) -> int:
        """A search from ``obs``; in training the visit distribution and root value are kept
        for the step's :meth:`observe`. Within an ``action_repeat`` decision: its action."""
        self._mode = explore
        action, left = self._repeat[explore]
        if left > 0:
            self._repeat[explore] = (action, left - 1)
            return action
        res = self._search(self._obs(obs), noise=explore or self.cfg.eval_root_noise)
        eps_greedy = explore and self.cfg.eps_greedy
        if res.action is not None:  # Gumbel: Sequential Halving's pick
            a = int(res.action[0])
        else:
            temp = self.temperature() if explore and not eps_greedy else 0.0
            a = int(select_action(res.visit_counts, temp, self.ctx.np_rng)[0])
        if eps_greedy:
            a = self._eps_action(a)
        if explore:
            self._last = (self._policy_targets(res)[0], float(res.root_value[0]))
        self._repeat[explore] = (a, self.cfg.action_repeat - 1)
        return a

    def _search(self, obs: torch.Tensor, *, noise: bool) -> SearchResult:
        """One search from each observation ``[B, obs_dim]`` (one batched search)."""
        with torch.no_grad():
            s = self.net.represent(obs)
            logits, v_logits = self.net.predict(s)
            root_v = self.net.value(v_logits) if self.cfg.gumbel else None
        if self.cfg.value_prefix:  # the node state carries the LSTM state, prefix and depth
            s, step = self.net.pack_root(s), self.net.recurrent_packed
        else:
            step = self.net.recurrent
        return search(
            step, s, logits, self.search_cfg, noise=noise, rng=self.ctx.np_rng, root_value=root_v
        )

    @staticmethod
    def _policy_targets(res: SearchResult) -> np.ndarray:
        """``[B, A]``: the search's policy targets (visit distribution; Gumbel: its policy)."""
        if res.policy is not None:
            return res.policy.cpu().numpy()
        counts = res.visit_counts.cpu().numpy()
        return counts / counts.sum(-1, keepdims=True)

    def reset(self, *, explore: bool) -> None:
        self._repeat[explore] = (0, 0)
        self._acc[explore] = None

    def _decision(self, transition: Transition, explore: bool) -> Transition | None:
        """``action_repeat``: the decision's transition once its last env step is in (the
        rewards summed, ``obs`` from its first step), else ``None``."""
        if self.cfg.action_repeat == 1:
            return transition
        obs, action, reward = self._acc[explore] or (transition.obs, transition.action, 0.0)
        reward += transition.reward
        end = transition.terminated or transition.truncated
        if self._repeat[explore][1] > 0 and not end:
            self._acc[explore] = (obs, action, reward)
            return None
        self._acc[explore] = None
        self._repeat[explore] = (0, 0)
        return Transition(
            obs, action, reward, transition.next_obs, transition.terminated, transition.truncated
        )

    def _eps_action(self, greedy: int) -> int:
        """``eps_greedy``: a held random action, a new one with probability ``eps`` (held for a
        zeta-distributed number of steps when ``eps_duration_mu`` is set; both times
        ``eps_duration_unit``), else ``greedy``."""
        action, left = self._held
        if left > 0:
            self._held = (action, left - 1)
            return action
        rng = self.ctx.np_rng
        if rng.random() >= self.epsilon():
            return greedy
        action = int(rng.integers(self.n_actions))
        mu = self.cfg.eps_duration_mu
        n = int(rng.zipf(mu)) if mu else 1
        self._held = (action, n * self.cfg.eps_duration_unit - 1)
        return action

    @torch.no_grad()
    def state_value(self, obs: np.ndarray) -> float:
        """The prediction network's value at ``h(obs)``."""
        _, v = self.net.predict(self.net.represent(self._obs(obs)))
        return float(self.net.value(v)[0])

    # ------------------------------------------------------------------ data
    def observe(self, transition: Transition) -> None:
        self.env_steps += 1
        transition = self._decision(transition, True)  # type: ignore[assignment]
        if transition is None:
            return
        if self._last is None:
            raise RuntimeError("muzero.observe: call act(obs, explore=True) for the step first")
        policy, root_value = self._last
        self._last = None
        self._root_sum += root_value
        self._root_count += 1
        self.replay.add(transition, policy=policy, root_value=root_value)
        self._episode_len += 1
        self.priority[self.replay.slots(np.array([len(self.replay) - 1]))] = 0.0  # a reused slot
        if transition.terminated or transition.truncated:
            self._held = (0, 0)
            self._prioritize_last_episode()
            self.episodes_done += 1
            self._episode_len = 0

    def observe_eval(self, transition: Transition) -> None:
        transition = self._decision(transition, self._mode)  # type: ignore[assignment]
        if transition is not None:
            self.probe.add(transition)

    def _prioritize_last_episode(self) -> None:
        """Initial priorities of the episode that just ended: ``|root value - z|^alpha`` with
        the stored root values as the bootstrap (muzero-general's ``save_game``)."""
        c, end = self.cfg, len(self.replay)
        length = min(self._episode_len, end)  # its stored steps (a headless one: the survivors)
        pos = np.arange(end - length, end)
        ep = self.replay.gather(pos[:1], length, device="cpu")  # this episode only, no copy of all
        r = ep.reward[0].double().numpy()
        v = ep.extras["root_value"][0].double().numpy()
        disc = c.discount ** np.arange(length + 1)
        csum = np.concatenate([[0.0], np.cumsum(r * disc[:length])])
        j = np.minimum(np.arange(length) + c.td_steps, length)
        z = (csum[j] - csum[:length]) / disc[:length]
        boot = np.where(j < length, v[np.minimum(j, length - 1)] * c.discount**c.td_steps, 0.0)
        z = z + boot
        self.priority[self.replay.slots(pos)] = np.abs(v - z) ** c.per_alpha + 1e-6

    # ------------------------------------------------------------------ learning
    def update(self) -> Mapping[str, float]:
        """``train_ratio`` gradient steps per env step once an episode has ended."""
        if not self.episodes_done:
            return {}
        self._owed += self.cfg.train_ratio
        metrics: dict[str, float] = {}
        every = self.cfg.reanalyse_policy_interval
        while self._owed >= 1.0:
            self._owed -= 1.0
            metrics = self._train_step()
            if every and self.train_steps % every == 0:
                self._reanalyse_policies()
        return metrics

    def _reanalyse_policies(self) -> None:
        """MuZero Reanalyze over the whole replay (``reanalyse_policy_interval``): one batched
        search from every stored observation with the current network; the fresh visit
        distributions and root values replace the stored ones. Keeps the mean total-variation
        distance between old and new policy targets for :meth:`eval_metrics`."""
        n = len(self.replay)
        pos = np.arange(n)
        steps = self.replay.steps()
        obs = torch.as_tensor(steps.obs, dtype=torch.float32, device=self.device)
        res = self._search(obs, noise=self.cfg.reanalyse_policy_noise)
        fresh = self._policy_targets(res)
        old = steps.extras["policy"]
        self._reanalyse_tv = float(0.5 * np.abs(fresh - old).sum(-1).mean())
        self.replay.set_extra("policy", pos, fresh)
        self.replay.set_extra("root_value", pos, res.root_value.cpu().numpy())

    def _sample_positions(self) -> tuple[np.ndarray, torch.Tensor]:
        """Positions by priority (finished episodes only) and their importance weights."""
        c, n = self.cfg, len(self.replay)
        p = self.priority[self.replay.slots(np.arange(n))]
        if not c.prioritized:
            p = (p > 0).astype(np.float64)
        prob = p / p.sum()
        pos = self.ctx.np_rng.choice(n, size=c.batch_size, p=prob)
        w = 1.0 / (n * prob[pos])
        w = torch.as_tensor(w / w.max(), dtype=torch.float32, device=self.device)
        return pos, w

    def _td_steps(self, pos: np.ndarray) -> torch.Tensor | None:
        """``[B]``: each sampled position's ``td_steps``, shortened with its age under
        ``off_policy_correction`` (the config field); ``None`` without it (all ``td_steps``)."""
        c = self.cfg
        if not c.off_policy_correction:
            return None
        budget = max(1, self.ctx.total_steps // c.action_repeat)  # in stored steps
        age = len(self.replay) - 1 - pos  # stored steps since each position was stored
        l_steps = c.td_steps - age // max(1, int(c.auto_td_steps_ratio * budget))
        return torch.as_tensor(np.clip(l_steps, 1, c.td_steps), device=self.device)

    def _targets(
        self, seq: Any, td: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Value ``[B, K+1]``, reward ``[B, K+1]`` and policy ``[B, K+1, A]`` targets of the
        sampled windows ``[B, K + 1 + n]``, row ``b``'s values summing ``td[b] <= n`` rewards
        (``None``: ``n``; module docstring)."""
        c = self.cfg
        k1, n = c.num_unroll_steps + 1, c.td_steps
        mask = seq.mask
        if td is None:
            td = torch.full((mask.shape[0],), n, dtype=torch.long, device=mask.device)
        r = seq.reward * mask
        w = self._disc[:n] * (torch.arange(n, device=td.device) < td[:, None])  # [B, n]
        g = (r.unfold(1, n, 1)[:, :k1] * w[:, None]).sum(-1)  # [B, K+1] td-step sums
        at = torch.arange(k1, device=td.device) + td[:, None]  # [B, K+1]: t + k + td
        if c.reanalyse:  # the current network's value at the K + 1 bootstrap positions only
            with torch.no_grad():
                b, o = seq.obs.shape[0], seq.obs.shape[-1]
                obs_boot = seq.obs.gather(1, at[..., None].expand(b, k1, o))
                _, v_logits = self.net.predict(self.net.represent(obs_boot.reshape(b * k1, o)))
                v_boot = self.net.value(v_logits).reshape(b, k1)
        else:
            v_boot = seq.extras["root_value"].gather(1, at)
        inside = mask.gather(1, at)  # t + k + td still in the episode
        boot = inside * v_boot * self._disc[td][:, None]
        if c.bootstrap_truncated:
            with torch.no_grad():
                _, v_logits = self.net.predict(self.net.represent(seq.next_obs[:, -1]))
                v_last = self.net.value(v_logits)  # [B]: the last real step's next obs
            left = mask.flip(1).cumsum(1).flip(1)[:, :k1]  # real steps from t + k on
            trunc = seq.truncated[:, -1:] * (1 - inside) * (left > 0)
            boot = boot + trunc * c.discount**left * v_last[:, None]
        value = mask[:, :k1] * (g + boot)
        reward = torch.zeros_like(value)
        reward[:, 1:] = r[:, : k1 - 1]
        if c.value_prefix:  # the sums since each reset (after unrolled steps H, 2H, ...)
            cs = torch.cumsum(reward[:, 1:], 1)
            start = (
                torch.arange(k1 - 1, device=cs.device) // c.lstm_horizon_len * c.lstm_horizon_len
            )
            base = torch.where(start > 0, cs[:, (start - 1).clamp(min=0)], torch.zeros_like(cs))
            reward[:, 1:] = cs - base
        uniform = torch.full_like(seq.extras["policy"][:, :k1], 1.0 / self.n_actions)
        in_ep = mask[:, :k1, None] > 0
        policy = torch.where(in_ep, seq.extras["policy"][:, :k1], uniform)
        return value, reward, policy

    def _train_step(self) -> dict[str, float]:
        c, net = self.cfg, self.net
        k, n = c.num_unroll_steps, c.td_steps
        pos, weight = self._sample_positions()
        seq = self.replay.gather(pos, k + 1 + n)
        z, u, pi = self._targets(seq, self._td_steps(pos))
        acts = seq.act[:, :k, 0].long()
        past = seq.mask[:, :k] == 0  # past the end: random actions (muzero-general)
        if bool(past.any()):
            rand = self.ctx.np_rng.integers(self.n_actions, size=tuple(past.shape))
            acts = torch.where(past, torch.as_tensor(rand, device=self.device), acts)
        # gradient scale of the unrolled steps: the window's steps (muzero-general)
        scale = (seq.mask.sum(1) + 1).clamp(max=k)  # [B]

        s = net.represent(seq.obs[:, 0])
        p_logits, v_logits = net.predict(s)
        value_loss = net.support.cross_entropy(v_logits.float(), z[:, 0])
        policy_loss = -(pi[:, 0] * torch.log_softmax(p_logits.float(), -1)).sum(-1)
        reward_loss = torch.zeros_like(value_loss)
        consistency = torch.zeros_like(value_loss)
        lstm = None
        if c.consistency_coef > 0:  # EfficientZero's targets: the encodings of o_{t+1..t+K}
            b, o = seq.obs.shape[0], seq.obs.shape[-1]
            target = net.project(net.represent(seq.obs[:, 1 : k + 1].reshape(b * k, o)),
                                 with_grad=False).reshape(b, k, -1)  # fmt: skip
        v_pred = [net.value(v_logits.detach())]
        for i in range(1, k + 1):  # the model's recurrence is sequential in k
            if c.value_prefix:  # u[:, i] holds the prefix; the LSTM restarts every H steps
                if (i - 1) % c.lstm_horizon_len == 0:
                    lstm = (s.new_zeros(s.shape[0], c.lstm_hidden),) * 2
                r_logits, s, lstm = net.dynamics_prefix(s, acts[:, i - 1], lstm)
            else:
                r_logits, s = net.dynamics(s, acts[:, i - 1])
            s = 0.5 * s + 0.5 * s.detach()  # scale_gradient(s, 0.5)
            p_logits, v_logits = net.predict(s)
            value_loss = value_loss + net.support.cross_entropy(v_logits.float(), z[:, i]) / scale
            reward_loss = reward_loss + net.support.cross_entropy(r_logits.float(), u[:, i]) / scale
            step_pi = -(pi[:, i] * torch.log_softmax(p_logits.float(), -1)).sum(-1)
            policy_loss = policy_loss + step_pi / scale
            if c.consistency_coef > 0:
                online = net.project(s, with_grad=True).float()
                cos = nn.functional.cosine_similarity(online, target[:, i - 1].float(), dim=-1,
                                                      eps=1e-5)  # fmt: skip
                consistency = consistency - cos * seq.mask[:, i] / scale
            v_pred.append(net.value(v_logits.detach()))
        total = c.value_loss_weight * value_loss + reward_loss + policy_loss
        if c.consistency_coef > 0:
            total = total + c.consistency_coef * consistency
        if c.prioritized:
            total = total * weight
        lr = c.lr * c.lr_decay_rate ** (self.train_steps / c.lr_decay_steps)
        for group in self.optim.param_groups:
            group["lr"] = lr
        self.optim.zero_grad(set_to_none=True)
        total.mean().backward()
        self.optim.step()
        self.train_steps += 1

        # new priorities of the unrolled positions still in their episode
        err = (torch.stack(v_pred, 1) - z).abs().cpu().numpy() ** c.per_alpha  # [B, K+1]
        real = seq.mask[:, : k + 1].cpu().numpy() > 0
        rows, cols = np.nonzero(real)
        self.priority[self.replay.slots(pos[rows] + cols)] = err[rows, cols] + 1e-6
        out = {
            "value_loss": float(value_loss.detach().mean()),
            "reward_loss": float(reward_loss.detach().mean()),
            "policy_loss": float(policy_loss.detach().mean()),
            "total_loss": float(total.detach().mean()),
            "lr": lr,
        }
        if c.consistency_coef > 0:
            out["consistency_loss"] = float(consistency.detach().mean())
        return out

    # ------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def probe_errors(self) -> dict[str, float]:
        """The value-equivalence probe on the stored evaluation steps: from each step, the
        model unrolled open loop on the real actions against the encodings of the real states
        (module docstring)."""
        steps = self.probe.steps()
        n = len(steps.obs)
        if not n:
            return {}
        net, dev = self.net, self.device
        ends = self.probe.episode_ends(np.arange(n))
        obs = torch.as_tensor(steps.obs, device=dev)
        nxt = torch.as_tensor(steps.next_obs, device=dev)
        act = torch.as_tensor(steps.act[:, 0], device=dev).long()
        rew = torch.as_tensor(steps.reward, device=dev)
        s_real = net.represent(nxt)  # the state after step i
        p_real_logits, v_real_logits = net.predict(s_real)
        p_real, v_real = torch.softmax(p_real_logits, -1), net.value(v_real_logits)
        idx = np.arange(n)
        s = net.represent(obs)
        vp, packed = self.cfg.value_prefix, None
        if vp:
            packed = net.pack_root(s)
        out: dict[str, float] = {}
        for t in range(max(self.cfg.probe_horizons)):  # open loop: sequential in k
            k = t + 1
            j = np.minimum(idx + t, n - 1)
            if vp:  # rewards as differences of prefixes, as the search reads them
                r_pred, packed, _, _ = net.recurrent_packed(packed, act[j])
                s = packed[:, : net.encoding]
            else:
                r_logits, s = net.dynamics(s, act[j])
            ok = np.flatnonzero(idx + t < ends)
            if k not in self.cfg.probe_horizons or not len(ok):
                continue
            sel = torch.as_tensor(ok, device=dev)
            last = torch.as_tensor(j[ok], device=dev)
            p_logits, v_logits = net.predict(s[sel])
            r_sel = r_pred[sel] if vp else net.value(r_logits[sel])
            out[f"ve_reward_err_h{k}"] = float((r_sel - rew[last]).abs().mean())
            out[f"ve_value_err_h{k}"] = float((net.value(v_logits) - v_real[last]).abs().mean())
            out[f"ve_latent_err_h{k}"] = float(((s[sel] - s_real[last]) ** 2).mean())
            tv = 0.5 * (torch.softmax(p_logits, -1) - p_real[last]).abs().sum(-1)
            out[f"ve_policy_err_h{k}"] = float(tv.mean())
        return {key: v for key, v in out.items() if math.isfinite(v)}

    def eval_metrics(self) -> Mapping[str, float]:
        out = self.probe_errors()
        self.probe.clear()
        if self._reanalyse_tv is not None:
            out["reanalyse_policy_tv"] = self._reanalyse_tv
            self._reanalyse_tv = None
        if self._root_count:
            out["root_value"] = self._root_sum / self._root_count
            self._root_sum, self._root_count = 0.0, 0
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optim": self.optim.state_dict(),
            "replay": self.replay.state_dict(),
            "priority": self.priority.copy(),
            "probe": self.probe.state_dict(),
            "counters": (self.env_steps, self.train_steps, self.episodes_done, self._owed),
            "episode_len": self._episode_len,
            "root": (self._root_sum, self._root_count),
            "held": self._held,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optim.load_state_dict(state["optim"])
        self.replay.load_state_dict(state["replay"])
        self.priority = np.asarray(state["priority"]).copy()
        self.probe.load_state_dict(state["probe"])
        self.env_steps, self.train_steps, self.episodes_done, self._owed = state["counters"]
        self._episode_len = int(state["episode_len"])
        self._root_sum, self._root_count = state["root"]
        self._held = tuple(state.get("held", (0, 0)))  # type: ignore[assignment]
