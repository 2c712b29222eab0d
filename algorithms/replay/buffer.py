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
        sim_state_dim: int = 0,
    ) -> None:
        self.capacity = int(capacity)
        self.sim_state_dim = int(sim_state_dim)
        """``S`` > 0: :meth:`add` also keeps each transition's float64 simulator states
        (``sim_state``, ``next_sim_state`` ``[capacity, S]``; oracle rollouts restart from them)."""
        self.sim_state = np.zeros((capacity if sim_state_dim else 0, sim_state_dim), np.float64)
        self.next_sim_state = np.zeros_like(self.sim_state)
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
    def for_trial(
        cls, capacity: int, obs_dim: int, act_dim: int, ctx: RunContext, sim_state_dim: int = 0
    ) -> ReplayBuffer:
        """A buffer on the trial's generator and device, never larger than its step budget."""
        if ctx.total_steps > 0:
            capacity = min(capacity, ctx.total_steps)
        return cls(capacity, obs_dim, act_dim, ctx.np_rng, ctx.device, sim_state_dim)

    def __len__(self) -> int:
        return self.size

    def add(self, t: Transition) -> None:
        if self.sim_state_dim:
            if t.sim_state is None or t.next_sim_state is None:
                raise ValueError(
                    "this buffer keeps simulator states (oracle rollouts): pass transitions with "
                    "sim_state and next_sim_state (the env's info['sim_state'], SIMULATOR tasks)"
                )
            self.sim_state[self.ptr] = t.sim_state
            self.next_sim_state[self.ptr] = t.next_sim_state
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
            "sim_state": self.sim_state[:n].copy(),
            "next_sim_state": self.next_sim_state[:n].copy(),
            "ptr": self.ptr,
            "size": n,
        }  # not ``rng``: the trial's generator, saved by its owner (RunContext.generator_state)

    def load_state_dict(self, s: dict[str, Any]) -> None:
        n = s["size"]
        for k in ("obs", "act", "reward", "next_obs", "terminated"):
            getattr(self, k)[:n] = s[k]
        if self.sim_state_dim:
            self.sim_state[:n], self.next_sim_state[:n] = s["sim_state"], s["next_sim_state"]
        self.ptr, self.size = s["ptr"], n
