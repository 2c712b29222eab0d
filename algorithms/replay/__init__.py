"""Replay storage: transitions (:mod:`.buffer`) and episodes as sequences (:mod:`.sequence`)."""

from algorithms.replay.buffer import Batch, ReplayBuffer
from algorithms.replay.sequence import SequenceReplay, Sequences, Steps

__all__ = ["Batch", "ReplayBuffer", "SequenceReplay", "Sequences", "Steps"]
