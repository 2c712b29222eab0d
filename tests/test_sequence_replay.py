"""SequenceReplay: episode boundaries, masks, flags, extras, wrap-around, seeding, resume; and the
model-error probe that keeps its pending steps in one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from algorithms.api import Transition
from algorithms.models.diagnostics import ModelErrorProbe
from algorithms.replay import SequenceReplay


def _step(ep: int, i: int, *, end: str = "") -> Transition:
    """A step whose obs encodes (episode, step in episode), so sequences can be checked."""
    obs = np.array([ep, i, 0.0], np.float32)
    nxt = np.array([ep, i + 1, 0.0], np.float32)
    return Transition(
        obs,
        np.array([i, -i], np.float32),
        float(10 * ep + i),
        nxt,
        end == "terminated",
        end == "truncated",
    )


def _fill(replay: SequenceReplay, lengths, ends=None, first_ep: int = 0, **extra) -> None:
    """Episodes of the given lengths; ``ends[e]`` is how episode ``e`` ends ("": still running)."""
    ends = ends or ["terminated"] * len(lengths)
    for e, (n, end) in enumerate(zip(lengths, ends, strict=True)):
        for i in range(n):
            replay.add(_step(first_ep + e, i, end=end if i == n - 1 else ""), **extra)


def test_sequences_never_cross_an_episode_end_and_padding_repeats_the_last_step():
    replay = SequenceReplay(100, 3, 2)
    lengths = [5, 1, 7, 3, 9]
    _fill(replay, lengths, ["terminated", "truncated", "terminated", "truncated", ""])
    assert len(replay) == sum(lengths) and replay.num_episodes == 5
    seq = replay.sample(256, 6, generator=np.random.default_rng(0))
    assert seq.obs.shape == (256, 6, 3) and seq.act.shape == (256, 6, 2)
    assert seq.mask.shape == seq.reward.shape == seq.terminated.shape == (256, 6)
    ep, i0 = seq.obs[:, 0, 0].long(), seq.obs[:, 0, 1].long()
    real = torch.minimum(torch.full_like(ep, 6), torch.tensor(lengths)[ep] - i0)
    assert torch.equal(seq.mask.sum(1).long(), real)  # real steps: up to the episode's end only
    assert torch.all(seq.mask[:, 1:] <= seq.mask[:, :-1])  # a prefix of ones, then zeros
    last = real - 1
    for t in range(6):
        on = seq.mask[:, t] > 0
        assert torch.equal(seq.obs[on, t, 0].long(), ep[on])  # same episode while unmasked
        assert torch.equal(seq.obs[on, t, 1].long(), i0[on] + t)  # consecutive steps
        off = ~on  # padding repeats the row's last real step, flags included
        rows = torch.nonzero(off).flatten()
        assert torch.equal(seq.obs[off, t], seq.obs[rows, last[rows]])
        assert torch.equal(seq.terminated[off, t], seq.terminated[rows, last[rows]])
    assert torch.equal(seq.reward, 10 * seq.obs[..., 0] + seq.obs[..., 1])
    assert torch.equal(seq.next_obs[..., 1], seq.obs[..., 1] + 1)
    assert (seq.mask == 0).any() and (seq.mask.sum(1) == 6).any()  # both cases were drawn


def test_terminated_and_truncated_are_kept_apart():
    replay = SequenceReplay(50, 3, 2)
    _fill(replay, [3, 4, 2], ["terminated", "truncated", ""])
    eps = list(replay.episodes())
    assert [len(e.obs) for e in eps] == [3, 4, 2] and [e.episode[0] for e in eps] == [0, 1, 2]
    assert eps[0].terminated.tolist() == [False, False, True] and not eps[0].truncated.any()
    assert eps[1].truncated.tolist() == [False, False, False, True] and not eps[1].terminated.any()
    assert not eps[2].terminated.any() and not eps[2].truncated.any()  # still running: valid data
    seq = replay.gather(np.array([2, 6, 7]), 2)
    assert seq.terminated[0].tolist() == [1.0, 1.0] and seq.truncated[0].tolist() == [0.0, 0.0]
    assert seq.truncated[1].tolist() == [1.0, 1.0] and seq.terminated[1].tolist() == [0.0, 0.0]
    assert seq.mask.tolist() == [[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]


def test_extras_round_trip_with_their_shapes_and_dtypes():
    spec = {"search_policy": (4,), "root_value": (), "visits": ((4,), np.int64)}
    replay = SequenceReplay(20, 3, 1, extras=spec, act_dtype=np.int64)
    for i in range(8):
        pi = np.full(4, i / 10, np.float32)
        replay.add(
            Transition(
                np.full(3, i, np.float32), np.array([i % 4]), 0.0, np.zeros(3), i == 3, False
            ),
            search_policy=pi,
            root_value=-i,
            visits=np.arange(4) + i,
        )
    seq = replay.gather(np.array([1, 4]), 3)
    assert seq.extras["search_policy"].shape == (2, 3, 4)
    assert seq.extras["root_value"].tolist() == [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]]
    assert seq.extras["visits"].dtype == torch.int64 and seq.act.dtype == torch.int64
    assert seq.extras["visits"][1, 2].tolist() == [6, 7, 8, 9]
    assert torch.allclose(seq.extras["search_policy"][0, :, 0], torch.tensor([0.1, 0.2, 0.3]))
    assert seq.act[1, :, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"missing extras \['visits'\].*undeclared.*\['value'\]"):
        replay.add(_step(0, 0), search_policy=np.zeros(4), root_value=0.0, value=1.0)
    with pytest.raises(ValueError, match="clashes with a built-in"):
        SequenceReplay(5, 3, 1, extras={"mask": ()})


def test_wrap_around_drops_the_overwritten_episode_whole():
    replay = SequenceReplay(10, 3, 2)
    _fill(replay, [4, 4, 4], ["terminated", "truncated", ""])  # step 11 overwrites episode 0
    assert len(replay) == 8 and replay.num_episodes == 2
    eps = list(replay.episodes())
    assert [e.obs[:, 0].tolist() for e in eps] == [[1.0] * 4, [2.0] * 4]
    assert [e.obs[0, 1] for e in eps] == [0.0, 0.0]  # every stored episode starts at its start
    # the newest step's sequence stops there instead of running into the oldest slots
    seq = replay.gather(np.array([len(replay) - 1]), 4)
    assert seq.mask.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    # kept from its first surviving step instead when asked
    headless = SequenceReplay(10, 3, 2, drop_partial=False)
    _fill(headless, [4, 4, 4], ["terminated", "truncated", ""])
    eps = list(headless.episodes())
    assert len(headless) == 10 and [len(e.obs) for e in eps] == [2, 4, 4]
    assert eps[0].obs[:, 1].tolist() == [2.0, 3.0] and eps[0].terminated[-1]
    # a running episode longer than the ring is kept headless: the step being written survives
    long = SequenceReplay(5, 3, 2)
    _fill(long, [3, 9], ["terminated", ""])
    assert len(long) == 5 and long.steps().obs[:, 1].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_sampling_is_reproducible_with_a_seed_and_uses_no_global_rng():
    replay = SequenceReplay(200, 3, 2)
    _fill(replay, [30, 50, 40, 20])
    np.random.seed(0)  # noqa: NPY002 (the legacy global generator must stay untouched)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = replay.sample(64, 5, generator=np.random.default_rng(7))
    b = replay.sample(64, 5, generator=np.random.default_rng(7))
    c = replay.sample(64, 5, generator=np.random.default_rng(8))
    assert all(torch.equal(x, y) for x, y in zip(a[:7], b[:7], strict=True))
    assert not torch.equal(a.obs, c.obs)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    with pytest.raises(ValueError, match="empty replay: add steps first"):
        SequenceReplay(5, 3, 2).sample(1, 2, generator=np.random.default_rng(0))


def test_state_dict_round_trip_after_wrap_around_mid_episode():
    spec = {"root_value": ()}
    replay = SequenceReplay(25, 3, 2, extras=spec)
    _fill(
        replay,
        [7, 9, 6, 8, 5],
        ["terminated", "truncated", "terminated", "truncated", ""],
        root_value=1.5,
    )
    buf = io.BytesIO()
    torch.save(replay.state_dict(), buf)
    buf.seek(0)
    copy = SequenceReplay(25, 3, 2, extras=spec)
    copy.load_state_dict(torch.load(buf, weights_only=False))
    for r in (replay, copy):  # the running episode goes on and ends in both; more wrap-around
        for i in range(5, 12):
            r.add(_step(4, i, end="terminated" if i == 11 else ""), root_value=-1.0)
        _fill(r, [6], first_ep=5, root_value=2.0)
    assert len(copy) == len(replay) and copy.num_episodes == replay.num_episodes
    for x, y in zip(replay.steps(), copy.steps(), strict=True):
        eq = (
            [np.array_equal(x[k], y[k]) for k in x]
            if isinstance(x, dict)
            else [np.array_equal(x, y)]
        )
        assert all(eq)
    s, t = (r.sample(32, 6, generator=np.random.default_rng(3)) for r in (replay, copy))
    assert all(torch.equal(x, y) for x, y in zip(s[:7], t[:7], strict=True))
    with pytest.raises(ValueError, match="build it with the saved run's config"):
        SequenceReplay(30, 3, 2, extras=spec).load_state_dict(replay.state_dict())


def test_clear_forgets_the_steps_and_the_running_episode_goes_on():
    replay = SequenceReplay(20, 3, 2)
    _fill(replay, [4, 3], ["terminated", ""])
    replay.clear()
    assert len(replay) == 0 and replay.num_episodes == 0 and not list(replay.episodes())
    for i in range(3, 6):
        replay.add(_step(1, i, end="truncated" if i == 5 else ""))
    replay.add(_step(2, 0))
    eps = list(replay.episodes())
    assert [e.obs[:, 1].tolist() for e in eps] == [[3.0, 4.0, 5.0], [0.0]]
    assert eps[0].episode.tolist() == [1, 1, 1] and eps[1].episode.tolist() == [2]
    assert replay.episode_ends(np.arange(4)).tolist() == [3, 3, 3, 4]


# ---------------------------------------------------------------- the model-error probe's store
class _DriftModel:
    """``s' = s + a + 0.1 tanh(s)``: a deterministic model that is wrong by a state-dependent
    amount, so every pending step and window changes the score."""

    fitted = True
    device = torch.device("cpu")

    def step(self, obs, act, **kw):
        from algorithms.models.ensemble import StepOutput

        return StepOutput(obs + act + 0.1 * torch.tanh(obs), None)


def _probe_steps(probe: ModelErrorProbe, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=2).astype(np.float32)
    for i in range(n):
        act = rng.normal(size=2).astype(np.float32) * 0.1
        done = i % 17 == 16
        probe.add(Transition(obs, act, 0.0, obs + act, done, False))
        obs = rng.normal(size=2).astype(np.float32) if done else obs + act


def test_probe_state_round_trip_measures_the_same_and_loads_the_old_format():
    probe = ModelErrorProbe(2, 2, (1, 5, 10), capacity=40)
    _probe_steps(probe, 70, 0)  # past its capacity: the oldest episode is kept headless
    assert len(probe.pending) == 40
    state = probe.state_dict()
    # the pre-SequenceReplay checkpoint layout: (obs, act, next_obs, done) per pending step
    steps = probe.pending.steps()
    done = steps.terminated | steps.truncated
    legacy = dict(state, pending=list(zip(steps.obs, steps.act, steps.next_obs, done, strict=True)))
    copies = [ModelErrorProbe(2, 2, (1, 5, 10), capacity=40) for _ in range(2)]
    copies[0].load_state_dict(state)
    copies[1].load_state_dict(legacy)
    want = probe.measure(_DriftModel())
    assert set(want) == {"model_err_h1", "model_err_h5", "model_err_h10"} and want["model_err_h1"]
    assert [c.measure(_DriftModel()) for c in copies] == [want, want]
    assert probe.measure(_DriftModel()) == {}  # measured steps are forgotten


def test_set_extra_overwrites_stored_steps_by_position_after_wrap_around():
    replay = SequenceReplay(6, 3, 2, extras={"v": ()})
    _fill(replay, [4, 4], v=0.0)  # the first episode dropped whole: positions 0-3 hold ep 1
    replay.set_extra("v", np.array([1, 3]), np.array([5.0, 7.0]))
    np.testing.assert_array_equal(replay.steps().extras["v"], [0.0, 5.0, 0.0, 7.0])
    with pytest.raises(IndexError, match="must lie in"):
        replay.set_extra("v", np.array([4]), np.array([1.0]))
    with pytest.raises(KeyError, match="declared"):
        replay.set_extra("w", np.array([0]), np.array([1.0]))
