"""Trajectory optimizers: maximize an objective over batches of action sequences.

An optimizer only sees ``objective(actions [N, H, A]) -> returns [N]`` (higher is better) and the
action box; it knows nothing of models, particles or tasks (the MPC agent builds the objective
from a learned ensemble, a task's torch dynamics or the MuJoCo simulator). Every call evaluates
whole populations at once: one objective call per iteration.

Shapes: ``N`` population, ``H`` horizon, ``A`` action dim, ``K`` elites.

Warm start (all optimizers): :meth:`TrajectoryOptimizer.optimize` starts from the previous
solution (or sampling mean, where the executed plan is another sequence) shifted by one step (the
last step is filled with the box's midpoint, as PETS's ``MPC.act`` does);
:meth:`TrajectoryOptimizer.reset` forgets it (new episode).

Proposals (all optimizers): ``optimize(objective, proposals)`` with ``proposals [K, H, A]``
(trajectories from elsewhere, e.g. a policy prior: TD-MPC2 mixes 24 policy rollouts into its
MPPI population) appends them, clipped to the box, to the candidates of every iteration: a
population of ``N + K``. They are scored and can become the best sequence or an elite like any
sample; ``proposals=None`` changes nothing (no extra random draws).

- :class:`RandomShooting`: uniform samples, the best one (Nagabandi et al. 2018).
- :class:`CEM`: the cross-entropy method as in PETS (Chua et al. 2018, kchua/handful-of-trials
  ``dmbrl/misc/optimizers/cem.py``): Gaussian with per-step variance truncated at 2 std and shrunk
  to stay inside the box, elites' mean and variance blended with momentum ``alpha``; it returns the
  final **mean** (not the single best sample; mbrl-lib PR #70 fixed that late, with a large
  HalfCheetah gain).
- :class:`MPPI`: path-integral weighting as in PDDM (Nagabandi et al. 2019, google-research/pddm
  ``mppi.py``): ``exp(kappa * (R - max R))`` weights, noise filtered in time with ``beta``.
- :class:`ICEM`: improved CEM (Pinneri et al. 2020): colored (``1/f^beta``) noise, a population
  that decays by ``gamma`` per iteration, a fraction of elites kept across iterations and shifted
  to the next env step, the mean added in the last iteration, the best sequence executed.
- :class:`EliteMPPI`: TD-MPC's and TD-MPC2's MPPI (Hansen et al. 2022, 2024): Gaussian samples,
  the ``exp(temperature * (R - max R))``-weighted mean and std of the top ``K`` only, the std
  clamped to ``[min_std, max_std]``, an elite drawn by its weight executed.

Sample buffers are preallocated per population size and reused, so a planning step does not
re-map large temporaries (see the module :mod:`benchmark.perf.planning` for figures).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import torch

from algorithms.api import PositiveFloat, PositiveInt, Range

Tensor = torch.Tensor
#: ``objective(actions [N, H, A]) -> [N]`` returns to maximize (NaN counts as -inf).
Objective = Callable[[Tensor], Tensor]


class TrajectoryOptimizer(ABC):
    """Base class: the action box, the warm-start state and a seeded generator."""

    def __init__(
        self,
        horizon: int,
        low: Tensor,
        high: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.low = low.reshape(1, -1).float()  # [1, A]
        self.high = high.reshape(1, -1).float()
        self.act_dim = self.low.shape[1]
        self.device = self.low.device
        self.generator = generator
        self._buffers: dict[tuple, Tensor] = {}
        self.solution: Tensor | None = None
        """``[H, A]``: the last plan (``None`` after :meth:`reset`)."""
        self.mean: Tensor | None = None
        """``[H, A]``: the last sampling mean, where the executed plan may be another sequence
        (iCEM's best sample, TD-MPC's sampled elite); the warm start shifts it instead of
        :attr:`solution`. ``None``: the plan is the mean."""
        self.last_info: dict[str, float] = {}

    @property
    def midpoint(self) -> Tensor:
        return (self.low + self.high) / 2

    def reset(self) -> None:
        """Forget the warm start (call at every episode start)."""
        self.solution, self.mean = None, None

    def initial_mean(self) -> Tensor:
        """``[H, A]``: the previous sampling mean (or solution) shifted by one step, or the box
        midpoint."""
        mid = self.midpoint.expand(self.horizon, -1)
        prev = self.solution if self.mean is None else self.mean
        if prev is None:
            return mid.clone()
        return torch.cat([prev[1:], mid[:1]], dim=0)

    def buffer(self, name: str, *shape: int) -> Tensor:
        """A reusable float32 buffer (allocated once per name and shape)."""
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            device = "cpu" if name.endswith("@gen") else self.device
            buf = torch.empty(shape, device=device)
            self._buffers[key] = buf
        return buf

    def draw(self, name: str, shape: tuple[int, ...], fill: Callable[..., Tensor]) -> Tensor:
        """A reusable ``shape`` buffer filled in place by ``fill(buf, generator=...)``.

        The numbers come from ``self.generator`` on its own device (the run's CPU generator), so a
        CUDA planner gives the same plans as a CPU one: they are drawn into a CPU twin of the
        buffer and copied once.
        """
        buf = self.buffer(name, *shape)
        gen = self.generator
        if gen is not None and gen.device != buf.device:
            return buf.copy_(fill(self.buffer(name + "@gen", *shape), generator=gen))
        return fill(buf, generator=gen)

    def clamp_(self, actions: Tensor) -> Tensor:
        """Clip ``[..., A]`` actions into the box, in place."""
        return torch.maximum(torch.minimum(actions, self.high, out=actions), self.low, out=actions)

    @staticmethod
    def score(objective: Objective, actions: Tensor) -> Tensor:
        """``objective(actions)`` with NaN replaced by ``-inf`` (a diverged model rollout never wins)."""
        return torch.nan_to_num(objective(actions), nan=-math.inf)

    def optimize(self, objective: Objective, proposals: Tensor | None = None) -> Tensor:
        """``[H, A]`` the plan to execute (its first action now); kept for the next warm start.

        ``proposals [K, H, A]``: sequences added to every iteration's candidates (see the module
        docstring); ``None``: none.
        """
        props = None if proposals is None else self.check_proposals(proposals)
        plan = self._optimize(objective, props)
        self.solution = plan
        return plan

    def check_proposals(self, proposals: Tensor) -> Tensor:
        """``[K, H, A]`` proposals as a float32 copy on the optimizer's device, clipped to the box;
        a clear error for any other shape."""
        if (
            proposals.dim() != 3
            or proposals.shape[0] < 1
            or proposals.shape[1:]
            != (
                self.horizon,
                self.act_dim,
            )
        ):
            raise ValueError(
                f"proposals must be [K >= 1, H={self.horizon}, A={self.act_dim}] action "
                f"sequences, got {tuple(proposals.shape)}; pass proposals=None for none"
            )
        return self.clamp_(proposals.to(self.device, torch.float32, copy=True))

    @staticmethod
    def with_proposals(samples: Tensor, proposals: Tensor | None) -> Tensor:
        """``[N + K, H, A]``: the samples followed by the proposals (``samples`` itself if none)."""
        return samples if proposals is None else torch.cat([samples, proposals], dim=0)

    @abstractmethod
    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        """The plan from ``objective``, with the checked ``proposals [K, H, A]`` (or ``None``)
        among the candidates of every iteration."""


def _truncated_normal_(t: Tensor, *, generator: torch.Generator | None) -> Tensor:
    """Standard normal truncated at 2 std, in place (PETS samples ``truncnorm(-2, 2)``)."""
    return torch.nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0, generator=generator)


class RandomShooting(TrajectoryOptimizer):
    """Uniform samples in the box; the best sequence (Nagabandi et al. 2018). No warm start."""

    def __init__(self, horizon: int, low: Tensor, high: Tensor, *, population: int, **kw) -> None:
        super().__init__(horizon, low, high, **kw)
        self.population = population

    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        u = self.draw("samples", (self.population, self.horizon, self.act_dim), Tensor.uniform_)
        seqs = self.with_proposals(u.mul_(self.high - self.low).add_(self.low), proposals)
        returns = self.score(objective, seqs)
        best = int(torch.argmax(returns))
        self.last_info = {"plan_return": float(returns[best])}
        return seqs[best].clone()


class CEM(TrajectoryOptimizer):
    """PETS's cross-entropy method (``dmbrl/misc/optimizers/cem.py``); returns the final mean."""

    def __init__(
        self,
        horizon: int,
        low: Tensor,
        high: Tensor,
        *,
        population: int,
        elites: int,
        iterations: int,
        alpha: float = 0.1,
        epsilon: float = 0.001,
        **kw,
    ) -> None:
        super().__init__(horizon, low, high, **kw)
        if not 1 <= elites <= population:
            raise ValueError(f"elites must be in [1, population={population}], got {elites}")
        self.population, self.elites, self.iterations = population, elites, iterations
        self.alpha, self.epsilon = alpha, epsilon

    def initial_var(self) -> Tensor:
        """``[H, A]``: PETS ``init_var = (ub - lb)^2 / 16``."""
        return ((self.high - self.low) ** 2 / 16).expand(self.horizon, -1).clone()

    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        mean, var = self.initial_mean(), self.initial_var()
        n, k = self.population, self.elites
        best_return = -math.inf
        it = 0
        while it < self.iterations and float(var.max()) > self.epsilon:
            # shrink the variance so 2 std stay inside the box (PETS constrained_var)
            lb_dist, ub_dist = mean - self.low, self.high - mean
            cvar = torch.minimum(torch.minimum((lb_dist / 2) ** 2, (ub_dist / 2) ** 2), var)
            z = self.draw("samples", (n, self.horizon, self.act_dim), _truncated_normal_)
            samples = self.clamp_(z.mul_(cvar.sqrt()).add_(mean))
            samples = self.with_proposals(samples, proposals)
            returns = self.score(objective, samples)
            top, idx = torch.topk(returns, k)
            elite = samples[idx]
            mean = self.alpha * mean + (1 - self.alpha) * elite.mean(0)
            var = self.alpha * var + (1 - self.alpha) * elite.var(0, unbiased=False)
            best_return = max(best_return, float(top[0]))
            it += 1
        self.last_info = {"plan_return": best_return, "plan_iterations": float(it)}
        return mean


class MPPI(TrajectoryOptimizer):
    """PDDM's MPPI (google-research/pddm ``pddm/policies/mppi.py``): filtered Gaussian noise around
    the warm-started mean, the mean re-estimated as the ``exp(kappa * (R - max R))``-weighted
    average of the samples, ``iterations`` times per env step."""

    def __init__(
        self,
        horizon: int,
        low: Tensor,
        high: Tensor,
        *,
        population: int,
        iterations: int = 1,
        kappa: float = 1.0,
        sigma: float = 0.9,
        beta: float = 0.8,
        **kw,
    ) -> None:
        super().__init__(horizon, low, high, **kw)
        self.population, self.iterations = population, iterations
        self.kappa, self.sigma, self.beta = kappa, sigma, beta
        self.past_action: Tensor | None = None
        self._filt: tuple[Tensor, Tensor] | None = None

    def reset(self) -> None:
        super().reset()
        self.past_action = None

    def _filter(self) -> tuple[Tensor, Tensor]:
        """``(F [H, H], c [H, 1])`` with ``u = F @ x + c * u_{-1}`` solving PDDM's recurrence
        ``u_t = beta x_t + (1 - beta) u_{t-1}``: ``F[t, k] = beta (1 - beta)^(t - k)`` for
        ``k <= t``, ``c[t] = (1 - beta)^(t + 1)``."""
        if self._filt is None:
            t = torch.arange(self.horizon, device=self.device, dtype=torch.float32)
            lag = t.view(-1, 1) - t.view(1, -1)
            decay = 1.0 - self.beta
            filt = torch.where(lag >= 0, self.beta * decay ** lag.clamp(min=0), 0.0)
            self._filt = (filt, (decay ** (t + 1)).view(-1, 1))
        return self._filt

    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        n, h = self.population, self.horizon
        half_range = (self.high - self.low) / 2  # sigma is in units of the half range
        mean = self.initial_mean()
        past = self.midpoint[0] if self.past_action is None else self.past_action
        best_return = -math.inf
        for _ in range(self.iterations):
            eps = self.draw("noise", (n, h, self.act_dim), Tensor.normal_)
            eps.mul_(self.sigma * half_range)
            # u_t = beta (mean_t + eps_t) + (1 - beta) u_{t-1}, unrolled: one [H, H] matmul
            filt, carry = self._filter()
            samples = torch.einsum("tk,nka->nta", filt, eps.add_(mean)).add_(carry * past)
            samples = self.with_proposals(self.clamp_(samples), proposals)
            returns = self.score(objective, samples)
            best_return = max(best_return, float(returns.max()))
            w = torch.softmax(self.kappa * (returns - returns.max()), dim=0)
            mean = torch.einsum("n,nha->ha", w, samples)
        self.past_action = mean[0].clone()
        self.last_info = {"plan_return": best_return}
        return mean


def colored_noise(
    beta: float,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Unit-variance Gaussian noise with power spectrum ``~ 1/f^beta`` along the LAST axis.

    ``beta = 0``: white noise; ``beta = 2``: Brownian-like (iCEM's choice for most tasks). Built in
    the frequency domain (the method of Timmer & Koenig 1995): random Fourier coefficients scaled
    by ``f^(-beta/2)`` (the lowest frequency cut at ``1/n``), inverse real FFT, divided by the
    analytic standard deviation of the non-constant terms. That is the normalization of the
    ``colorednoise`` package iCEM's code samples from; with the constant term the variance is a
    little above 1 for large ``beta`` on short sequences (std ~1.15 for ``beta = 2``, ``n = 30``).
    """
    n = shape[-1]
    f = torch.fft.rfftfreq(n, device=device)
    f[0] = 1.0 / n
    scale = f ** (-beta / 2.0)
    w = scale[1:].clone()
    if n % 2 == 0:
        w[-1] = w[-1] / 2  # the Nyquist term is real
    sigma = 2.0 * torch.sqrt((w**2).sum()) / n
    size = (*shape[:-1], len(f))
    re = torch.randn(size, generator=generator).to(device) * scale
    im = torch.randn(size, generator=generator).to(device) * scale
    im[..., 0] = 0.0
    re[..., 0] = re[..., 0] * math.sqrt(2.0)
    if n % 2 == 0:
        im[..., -1] = 0.0
        re[..., -1] = re[..., -1] * math.sqrt(2.0)
    return torch.fft.irfft(torch.complex(re, im), n=n) / sigma


class ICEM(TrajectoryOptimizer):
    """iCEM (Pinneri et al. 2020, "Sample-efficient Cross-Entropy Method for Real-time Planning",
    Alg. 1). Samples are clipped to the box (the paper's choice)."""

    def __init__(
        self,
        horizon: int,
        low: Tensor,
        high: Tensor,
        *,
        population: int,
        elites: int,
        iterations: int,
        alpha: float = 0.1,
        noise_beta: float = 2.0,
        population_decay: float = 1.25,
        keep_elites: float = 0.3,
        init_std: float = 0.5,
        execute_best: bool = True,
        **kw,
    ) -> None:
        super().__init__(horizon, low, high, **kw)
        if not 1 <= elites <= population:
            raise ValueError(f"elites must be in [1, population={population}], got {elites}")
        self.population, self.elites, self.iterations = population, elites, iterations
        self.alpha, self.noise_beta = alpha, noise_beta
        self.population_decay, self.keep_elites = population_decay, keep_elites
        self.init_std, self.execute_best = init_std, execute_best
        self.kept: Tensor | None = None
        """``[k, H, A]``: elites kept from the previous env step (shifted before reuse)."""

    def reset(self) -> None:
        super().reset()
        self.kept = None

    def _shift(self, seqs: Tensor) -> Tensor:
        """Shift ``[k, H, A]`` sequences one step left, padding with fresh uniform actions."""
        k = seqs.shape[0]
        pad = self.low + torch.rand(k, 1, self.act_dim, generator=self.generator).to(
            self.device
        ) * (self.high - self.low)
        return torch.cat([seqs[:, 1:], pad], dim=1)

    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        h, a = self.horizon, self.act_dim
        mean = self.initial_mean()
        std = (self.init_std * (self.high - self.low) / 2).expand(h, -1).clone()
        n_keep = max(1, round(self.keep_elites * self.elites))
        best_seq, best_return = None, -math.inf
        elite: Tensor | None = None
        for i in range(self.iterations):
            n = max(int(self.population * self.population_decay ** (-i)), 2 * self.elites)
            # colored noise along time: [n, A, H] -> [n, H, A]
            noise = colored_noise(
                self.noise_beta, (n, a, h), generator=self.generator, device=self.device
            ).transpose(1, 2)
            parts = [noise * std + mean]
            if i == 0 and self.kept is not None:
                parts.append(self._shift(self.kept))
            elif i > 0 and elite is not None:
                parts.append(elite[:n_keep])
            if i == self.iterations - 1:
                parts.append(mean.unsqueeze(0))
            if proposals is not None:
                parts.append(proposals)
            samples = self.clamp_(torch.cat(parts, dim=0))
            returns = self.score(objective, samples)
            top, idx = torch.topk(returns, min(self.elites, len(returns)))
            elite = samples[idx]
            if float(top[0]) > best_return:
                best_return, best_seq = float(top[0]), elite[0].clone()
            mean = self.alpha * mean + (1 - self.alpha) * elite.mean(0)
            std = self.alpha * std + (1 - self.alpha) * elite.std(0, unbiased=False)
        assert elite is not None and best_seq is not None
        self.kept, self.mean = elite[:n_keep].clone(), mean
        self.last_info = {"plan_return": best_return}
        return best_seq if self.execute_best else mean


@dataclass(frozen=True)
class EliteMPPIConfig:
    """Settings of :class:`EliteMPPI`. Defaults: TD-MPC2 (nicklashansen/tdmpc2
    ``tdmpc2/config.yaml``, planning section), for the coming ``tdmpc2`` plugin; TD-MPC's
    (nicklashansen/tdmpc ``cfgs/default.yaml``) where they differ. Stds are in units of the action
    half-range (both codes act in ``[-1, 1]``)."""

    population: PositiveInt = 512
    """Gaussian samples per iteration; proposals come on top. TD-MPC2 ``num_samples=512``
    *including* ``num_pi_trajs=24`` (so 488 with 24 proposals); TD-MPC 512 plus
    ``mixture_coef=0.05`` of them (25) from the policy."""
    elites: PositiveInt = 64
    """Elites weighted into the mean and std. Both: ``num_elites=64``."""
    iterations: PositiveInt = 6
    """Iterations per env step. Both: 6 (TD-MPC2 adds 2 when ``action_dim >= 20``)."""
    temperature: PositiveFloat = 0.5
    """Factor on the elites' returns in the weights ``exp(temperature * (R - max R))`` (an inverse
    temperature, as in the code). Both: ``temperature=0.5``."""
    momentum: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """Weight of the previous mean in the update. TD-MPC2 has none (0); TD-MPC ``momentum=0.1``."""
    min_std: PositiveFloat = 0.05
    """Lower clamp of the std. TD-MPC2 ``min_std=0.05``; TD-MPC anneals it from 0.5 to 0.05 over
    25k steps (``std_schedule``: set :attr:`EliteMPPI.min_std` to follow a schedule)."""
    max_std: PositiveFloat = 2.0
    """Upper clamp, and the initial std of every env step. Both: 2 (TD-MPC2 ``max_std``)."""
    sample_elite: bool = True
    """Execute an elite drawn with probability its weight (both codes, in training and
    evaluation); ``False``: the mean."""


class EliteMPPI(TrajectoryOptimizer):
    """TD-MPC's MPPI (Hansen et al. 2022, nicklashansen/tdmpc ``src/algorithm/tdmpc.py`` ``plan``;
    TD-MPC2, Hansen et al. 2024, nicklashansen/tdmpc2 ``tdmpc2/tdmpc2.py`` ``_plan``).

    Every iteration: ``population`` Gaussian samples ``mean + std * eps`` clipped to the box (plus
    the proposals, e.g. the policy prior's trajectories), scored in one objective call; the top
    ``elites`` weighted by ``softmax(temperature * R)``; the new mean and std are the weighted
    mean and std of the elites, the std clamped to ``[min_std, max_std]`` and the mean blended
    with the previous one by ``momentum``. The plan executed is an elite drawn with probability
    its weight (the agent adds ``last_std[0]`` noise to its first action in training, as both
    codes do); the warm start shifts the mean, not the executed elite. Settings:
    :class:`EliteMPPIConfig`.
    """

    def __init__(
        self,
        horizon: int,
        low: Tensor,
        high: Tensor,
        config: EliteMPPIConfig = EliteMPPIConfig(),
        **kw,
    ) -> None:
        super().__init__(horizon, low, high, **kw)
        c = config
        if not 1 <= c.elites <= c.population or c.iterations < 1:
            raise ValueError(
                f"need 1 <= elites <= population and iterations >= 1, got elites={c.elites}, "
                f"population={c.population}, iterations={c.iterations}"
            )
        if not 0 < c.min_std <= c.max_std or not 0 <= c.momentum < 1:
            raise ValueError(
                f"need 0 < min_std <= max_std and momentum in [0, 1), got min_std={c.min_std}, "
                f"max_std={c.max_std}, momentum={c.momentum}"
            )
        self.config = c
        self.min_std = c.min_std
        """The std's lower clamp now (a schedule may change it between steps)."""
        self.last_std: Tensor | None = None
        """``[H, A]``: the final std of the last step, in action units (TD-MPC's exploration
        noise on the executed action is ``last_std[0] * N(0, 1)``)."""

    def reset(self) -> None:
        super().reset()
        self.last_std = None

    def _optimize(self, objective: Objective, proposals: Tensor | None) -> Tensor:
        c, h, a = self.config, self.horizon, self.act_dim
        half_range = (self.high - self.low) / 2  # [1, A]: stds are in units of it
        lo, hi = self.min_std * half_range, c.max_std * half_range
        mean = self.initial_mean()
        std = hi.expand(h, -1).clone()
        best_return = -math.inf
        weights = elite = None
        for _ in range(c.iterations):
            eps = self.draw("noise", (c.population, h, a), Tensor.normal_)
            samples = self.with_proposals(self.clamp_(eps.mul_(std).add_(mean)), proposals)
            returns = self.score(objective, samples)
            top, idx = torch.topk(returns, c.elites)  # [K], sorted: top[0] is the best
            elite = samples[idx]  # [K, H, A]
            # all -inf (every rollout diverged): uniform weights instead of NaN
            logits = torch.nan_to_num(top - top[0], nan=0.0) * c.temperature
            weights = torch.softmax(logits, dim=0)  # [K]
            new_mean = torch.einsum("k,kha->ha", weights, elite)
            var = torch.einsum("k,kha->ha", weights, (elite - new_mean).square_())
            std = torch.maximum(torch.minimum(var.sqrt_(), hi), lo)
            mean = c.momentum * mean + (1 - c.momentum) * new_mean
            best_return = max(best_return, float(top[0]))
        assert weights is not None and elite is not None
        self.mean, self.last_std = mean, std
        self.last_info = {"plan_return": best_return}
        if not c.sample_elite:
            return mean
        gen = self.generator
        w = weights if gen is None else weights.to(gen.device)
        pick = int(torch.multinomial(w, 1, generator=gen))
        return elite[pick].clone()
