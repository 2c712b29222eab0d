"""Replay storage: transitions (:mod:`.buffer`) and episodes as sequences."""
