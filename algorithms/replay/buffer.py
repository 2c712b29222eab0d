"""Replay buffer: preallocated numpy ring, sampled with the trial's own generator."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from algorithms.api import RunContext, Transition


class Batch(NamedTuple):
    """A batch of transitions as float32 tensors: obs ``[B, O]``, act ``[B, A]``, reward ``[B]``,
    next_obs ``[B, O]``, terminated ``[B]`` (1.0 where the MDP ended)."""

    obs: torch.Tensor
    act: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """FIFO ring buffer of capacity ``capacity``. No global RNG: pass ``rng`` at construction."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
    ) -> None:
        self.capacity = int(capacity)
        self.rng = rng
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.ptr = 0
        self.size = 0

    @classmethod
    def for_trial(cls, capacity: int, obs_dim: int, act_dim: int, ctx: RunContext) -> ReplayBuffer:
        """A buffer on the trial's generator and device, never larger than its step budget."""
        if ctx.total_steps > 0:
            capacity = min(capacity, ctx.total_steps)
        return cls(capacity, obs_dim, act_dim, ctx.np_rng, ctx.device)

    def __len__(self) -> int:
        return self.size

    def add(self, t: Transition) -> None:
        self.add_batch(
            np.asarray(t.obs)[None],
            np.asarray(t.action, np.float32).reshape(1, -1),
            np.asarray([t.reward]),
            np.asarray(t.next_obs)[None],
            np.asarray([t.terminated]),
        )

    def add_batch(self, obs, act, reward, next_obs, terminated) -> None:
        """Append ``n`` transitions (arrays with leading dim ``n``; numpy or torch)."""
        arrays = [
            np.asarray(x.detach().cpu() if torch.is_tensor(x) else x)
            for x in (obs, act, reward, next_obs, terminated)
        ]
        n = len(arrays[0])
        if n > self.capacity:
            arrays = [a[-self.capacity :] for a in arrays]
            n = self.capacity
        idx = (self.ptr + np.arange(n)) % self.capacity
        for store, a in zip(
            (self.obs, self.act, self.reward, self.next_obs, self.terminated), arrays, strict=True
        ):
            store[idx] = a.reshape(store[idx].shape)
        self.ptr = int((self.ptr + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int) -> np.ndarray:
        return self.rng.integers(0, self.size, size=batch_size)

    def get(self, idx: np.ndarray | slice) -> Batch:
        """The transitions at ``idx`` as tensors on the buffer's device."""

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a[idx], device=self.device)

        return Batch(t(self.obs), t(self.act), t(self.reward), t(self.next_obs), t(self.terminated))

    def sample(self, batch_size: int) -> Batch:
        return self.get(self.sample_indices(batch_size))

    def all(self) -> Batch:
        """Every stored transition (oldest first is not guaranteed after wrap-around)."""
        return self.get(slice(0, self.size))

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "obs": self.obs[:n].copy(),
            "act": self.act[:n].copy(),
            "reward": self.reward[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "terminated": self.terminated[:n].copy(),
            "ptr": self.ptr,
            "size": n,
        }  # not ``rng``: the trial's generator, saved by its owner (RunContext.generator_state)

    def load_state_dict(self, s: dict[str, Any]) -> None:
        n = s["size"]
        for k in ("obs", "act", "reward", "next_obs", "terminated"):
            getattr(self, k)[:n] = s[k]
        self.ptr, self.size = s["ptr"], n
