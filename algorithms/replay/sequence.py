"""Sequence replay: real steps stored with their episodes, sampled as masked subsequences.

:class:`~algorithms.replay.buffer.ReplayBuffer` keeps independent transitions; the latent-model
families (TD-MPC2 unrolls ``H + 1`` steps, MuZero ``K`` steps with n-step value targets), the
held-out model-error probe and PILCO need steps in order, with their episode boundaries and with
``terminated`` (no bootstrap) kept apart from ``truncated`` (time limit: bootstrap as usual).

Storage is a preallocated numpy ring of ``capacity`` steps, FIFO, addressed by a *logical* index
(the number of steps added before it; slot ``i % capacity``). The stored steps are the logical
range ``[lo, hi)``; each step knows its episode id and, once the episode has ended, the logical
index one past its last step (``-1`` while the episode is still running, i.e. ``hi``). So a
sequence never crosses an episode boundary: its steps at or past that end are masked.

When the ring overwrites the first steps of the oldest episode, the rest of that episode is
dropped with it (``drop_partial=True``, the default: every stored episode starts at its real
first step, as :meth:`SequenceReplay.episodes` consumers such as PILCO need), or kept from its
first surviving step (``drop_partial=False``: a headless episode, still valid for sequences that
start in it; the model-error probe's choice). A running episode longer than the whole ring is
always kept headless (dropping it would drop the step being written).

No generator is stored: :meth:`SequenceReplay.sample` takes the trial's ``np.random.Generator``
per call, whose state the trial context saves once, so :meth:`SequenceReplay.state_dict` holds
data and bookkeeping only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from algorithms.api import RunContext, Transition

ExtraSpec = Mapping[str, tuple[int, ...] | tuple[tuple[int, ...], Any]]
"""Extra per-step fields: ``name -> shape`` (float32) or ``name -> (shape, numpy dtype)``, e.g.
``{"search_policy": (A,), "root_value": ()}`` or ``{"visits": ((A,), np.int64)}``."""


class Sequences(NamedTuple):
    """``B`` subsequences of ``L`` steps as tensors: obs ``[B, L, O]``, act ``[B, L, A]``, reward
    ``[B, L]``, next_obs ``[B, L, O]``, terminated ``[B, L]``, truncated ``[B, L]`` (float32, 1.0
    where set), mask ``[B, L]`` (float32: 1.0 for real steps of the start's episode, 0.0 past its
    stored end), extras ``name -> [B, L, *shape]``.

    Masked steps are padding: each repeats the last real step of its row (so its obs, act and
    flags are those of that step, ``terminated`` included). Losses must weight by ``mask``."""

    obs: torch.Tensor
    act: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    mask: torch.Tensor
    extras: dict[str, torch.Tensor]


class Steps(NamedTuple):
    """``T`` stored steps in order as numpy arrays: obs ``[T, O]``, act ``[T, A]``, reward ``[T]``,
    next_obs ``[T, O]``, terminated ``[T]``, truncated ``[T]`` (bool), episode ``[T]`` (int64
    episode id, increasing with time), extras ``name -> [T, *shape]``. :meth:`SequenceReplay.steps`
    gives every stored step; :meth:`SequenceReplay.episodes` gives one episode per ``Steps``."""

    obs: np.ndarray
    act: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    extras: dict[str, np.ndarray]


_FIELDS = ("obs", "act", "reward", "next_obs", "terminated", "truncated", "episode")


def _parse_extras(extras: ExtraSpec | None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    out = {}
    for name, spec in (extras or {}).items():
        if name in _FIELDS or name in ("mask", "extras"):
            raise ValueError(f"extra field {name!r} clashes with a built-in field: rename it")
        if len(spec) == 2 and isinstance(spec[0], tuple):
            shape, dtype = spec
        else:
            shape, dtype = spec, np.float32
        out[name] = (tuple(int(d) for d in shape), np.dtype(dtype))
    return out


class SequenceReplay:
    """FIFO ring of real steps with episode ids; sampled as masked subsequences.

    Args:
        capacity: at most this many steps are kept (the most recent; see the module docstring for
            what happens to the oldest episode).
        obs_dim, act_dim: ``O`` and ``A`` (discrete tasks: ``A = 1``, the index, with
            ``act_dtype=np.int64``).
        extras: extra per-step fields declared here and passed to every :meth:`add`.
        act_dtype: numpy dtype of stored actions.
        obs_dtype: numpy dtype of stored observations (float64 for a learner that keeps a
            float64 env's observations exactly, as PILCO does).
        drop_partial: drop an episode whole when the ring overwrites its first steps (``True``)
            or keep its surviving steps (``False``).
        device: where :meth:`sample` puts its tensors.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        *,
        extras: ExtraSpec | None = None,
        act_dtype: Any = np.float32,
        obs_dtype: Any = np.float32,
        drop_partial: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be a positive number of steps, got {capacity}")
        self.capacity = int(capacity)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.drop_partial = drop_partial
        self.device = torch.device(device)
        self.extra_spec = _parse_extras(extras)
        c = self.capacity
        self._data: dict[str, np.ndarray] = {
            "obs": np.zeros((c, obs_dim), obs_dtype),
            "act": np.zeros((c, act_dim), act_dtype),
            "reward": np.zeros(c, np.float32),
            "next_obs": np.zeros((c, obs_dim), obs_dtype),
            "terminated": np.zeros(c, bool),
            "truncated": np.zeros(c, bool),
            "episode": np.zeros(c, np.int64),
        }
        self._extras = {k: np.zeros((c, *s), d) for k, (s, d) in self.extra_spec.items()}
        self._end = np.full(c, -1, np.int64)  # logical end of each slot's episode; -1: running
        self._lo = 0  # logical index of the oldest stored step
        self._hi = 0  # logical index of the next step to write
        self._next_id = 0  # id of the next episode
        self._open_start = -1  # logical first step of the running episode; -1: none running

    @classmethod
    def for_trial(
        cls, capacity: int, obs_dim: int, act_dim: int, ctx: RunContext, **kwargs: Any
    ) -> SequenceReplay:
        """A replay on the trial's device, never larger than its step budget."""
        if ctx.total_steps > 0:
            capacity = min(capacity, ctx.total_steps)
        return cls(capacity, obs_dim, act_dim, device=ctx.device, **kwargs)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def num_episodes(self) -> int:
        """Stored episodes, the running one included (a headless one counts too)."""
        if not len(self):
            return 0
        ids = self._data["episode"]
        return int(ids[(self._hi - 1) % self.capacity] - ids[self._lo % self.capacity]) + 1

    # ------------------------------------------------------------------ writing
    def add(self, t: Transition, **extra: Any) -> None:
        """Store one real step (in the order they happened) with every declared extra field.

        A step with ``terminated`` or ``truncated`` ends its episode; the next step starts a new
        one. The running episode's steps are valid data before it ends."""
        if (extra or self.extra_spec) and extra.keys() != self.extra_spec.keys():
            missing = sorted(self.extra_spec.keys() - extra.keys())
            unknown = sorted(extra.keys() - self.extra_spec.keys())
            raise ValueError(
                f"SequenceReplay.add: missing extras {missing}, undeclared extras {unknown}: pass "
                f"exactly the fields declared at construction {sorted(self.extra_spec)}"
            )
        hi = self._hi
        if hi - self._lo == self.capacity:
            self._evict()
        if self._open_start < 0:
            self._open_start = hi
            self._next_id += 1
        s = hi % self.capacity
        d = self._data
        d["obs"][s] = t.obs
        d["act"][s] = np.reshape(t.action, -1)
        d["reward"][s] = t.reward
        d["next_obs"][s] = t.next_obs
        d["terminated"][s] = t.terminated
        d["truncated"][s] = t.truncated
        d["episode"][s] = self._next_id - 1
        for k, v in extra.items():
            self._extras[k][s] = v
        self._end[s] = -1
        self._hi = hi + 1
        if t.terminated or t.truncated:
            # the episode's surviving steps learn where it ends
            self._end[self._slots(max(self._open_start, self._lo), hi + 1)] = hi + 1
            self._open_start = -1

    def set_extra(self, name: str, positions: np.ndarray, values: Any) -> None:
        """Overwrite the extra field ``name`` of stored steps ``positions [N]`` into
        :meth:`steps` (0 = oldest) with ``values [N, ...]`` (MuZero Reanalyze's fresh search
        targets)."""
        if name not in self._extras:
            raise KeyError(
                f"SequenceReplay.set_extra: no extra field {name!r}; declared: "
                f"{sorted(self._extras)}"
            )
        positions = np.asarray(positions, np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(
                f"SequenceReplay.set_extra: positions must lie in [0, {len(self)}), got "
                f"[{positions.min()}, {positions.max()}]"
            )
        self._extras[name][self.slots(positions)] = values

    def _evict(self) -> None:
        """Free the oldest slot (the ring is full): drop its step, and its episode if asked."""
        end = int(self._end[self._lo % self.capacity])
        self._lo = end if self.drop_partial and end >= 0 else self._lo + 1

    def clear(self) -> None:
        """Forget every stored step. A running episode goes on (its next steps keep its id)."""
        self._lo = self._hi

    # ------------------------------------------------------------------ reading
    def _slots(self, start: int, stop: int) -> np.ndarray:
        """Ring slots of the logical steps ``start .. stop - 1``."""
        return np.arange(start, stop) % self.capacity

    def _ends(self, logical: np.ndarray) -> np.ndarray:
        """Logical end (one past the last stored step) of the episode of each logical step."""
        end = self._end[logical % self.capacity]
        return np.where(end < 0, self._hi, end)

    def _take(self, slots: np.ndarray) -> Steps:
        d = self._data
        return Steps(
            *(d[k][slots] for k in _FIELDS), {k: v[slots] for k, v in self._extras.items()}
        )

    def steps(self) -> Steps:
        """Every stored step, oldest first (copies)."""
        return self._take(self._slots(self._lo, self._hi))

    def slots(self, positions: np.ndarray) -> np.ndarray:
        """Ring slots ``[N]`` of positions ``[N]`` into :meth:`steps` (0 = oldest): stable
        while the step stays stored, so a caller can keep per-step data beside the replay
        (MuZero's priorities) in an array of ``capacity`` slots."""
        return (self._lo + np.asarray(positions, np.int64)) % self.capacity

    def episode_ends(self, positions: np.ndarray) -> np.ndarray:
        """For positions ``[N]`` into :meth:`steps` (0 = oldest), the position one past the last
        stored step of each one's episode ``[N]``: step ``p + j`` is in ``p``'s episode iff
        ``p + j < episode_ends(p)``."""
        return self._ends(self._lo + np.asarray(positions)) - self._lo

    def episodes(self) -> Iterator[Steps]:
        """The stored episodes, oldest first, each as :class:`Steps` (copies); the last one may
        still be running (its last step has neither flag set)."""
        start = self._lo
        while start < self._hi:
            end = int(self._ends(np.asarray(start)))
            yield self._take(self._slots(start, end))
            start = end

    def gather(
        self, positions: np.ndarray, length: int, device: torch.device | str | None = None
    ) -> Sequences:
        """Subsequences of ``length`` steps starting at ``positions [B]`` into :meth:`steps`
        (0 = oldest), as :class:`Sequences` ``[B, length, ...]`` on ``device`` (default: the
        replay's). One numpy gather per field: no loop over the batch or the length."""
        n = len(self)
        positions = np.asarray(positions, np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= n):
            raise IndexError(f"positions must lie in [0, {n}), the stored steps")
        start = self._lo + positions
        end = self._ends(start)[:, None]
        logical = start[:, None] + np.arange(length)[None]
        mask = logical < end
        steps = self._take(np.minimum(logical, end - 1) % self.capacity)
        device = self.device if device is None else torch.device(device)

        def t(a: np.ndarray) -> torch.Tensor:
            if a.dtype == bool:
                a = a.astype(np.float32)
            return torch.as_tensor(a, device=device)

        return Sequences(
            *(t(a) for a in steps[:6]), t(mask), {k: t(v) for k, v in steps.extras.items()}
        )

    def sample(self, batch: int, length: int, *, generator: np.random.Generator) -> Sequences:
        """``batch`` subsequences of ``length`` steps, starts drawn uniformly over the stored
        steps with ``generator`` (the trial's ``ctx.np_rng``; no global RNG). A start near its
        episode's end gives a row with fewer real steps: see :attr:`Sequences.mask`."""
        if not len(self):
            raise ValueError("SequenceReplay.sample on an empty replay: add steps first")
        return self.gather(generator.integers(0, len(self), size=batch), length)

    def full_starts(self, length: int) -> np.ndarray:
        """Positions into :meth:`steps` (0 = oldest) whose next ``length`` steps all lie in
        their own episode (stored, the running episode's included): the starts of windows
        with no padding."""
        pos = np.arange(len(self))
        return pos[self.episode_ends(pos) - pos >= length]

    def sample_full(
        self,
        batch: int,
        length: int,
        *,
        generator: np.random.Generator,
        starts: np.ndarray | None = None,
    ) -> Sequences:
        """``batch`` windows of ``length`` real steps (every ``mask`` is 1), starts drawn
        uniformly over :meth:`full_starts` (TD-MPC2's slices of ``strict_length``). ``starts``:
        that array when the caller already has it (no step added since), e.g. for many updates
        in a row."""
        if starts is None:
            starts = self.full_starts(length)
        if not len(starts):
            raise ValueError(
                f"SequenceReplay.sample_full: no stored episode has {length} steps yet; add "
                "steps first"
            )
        return self.gather(starts[generator.integers(0, len(starts), size=batch)], length)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Stored steps (oldest first) and bookkeeping; no generator (the trial context's)."""
        slots = self._slots(self._lo, self._hi)
        return {
            "capacity": self.capacity,
            "data": {k: v[slots].copy() for k, v in self._data.items()},
            "extras": {k: v[slots].copy() for k, v in self._extras.items()},
            "end": self._end[slots].copy(),
            "lo": self._lo,
            "hi": self._hi,
            "next_id": self._next_id,
            "open_start": self._open_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity or state["extras"].keys() != self._extras.keys():
            raise ValueError(
                f"SequenceReplay.load_state_dict: saved capacity {state['capacity']} and extras "
                f"{sorted(state['extras'])}, this replay has {self.capacity} and "
                f"{sorted(self._extras)}: build it with the saved run's config"
            )
        self._lo, self._hi = state["lo"], state["hi"]
        self._next_id, self._open_start = state["next_id"], state["open_start"]
        slots = self._slots(self._lo, self._hi)
        for k, v in state["data"].items():
            self._data[k][slots] = v
        for k, v in state["extras"].items():
            self._extras[k][slots] = v
        self._end[slots] = state["end"]
