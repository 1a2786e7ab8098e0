"""Hybrid logical clock: stamps never go backwards, whatever the wall clock or peers do."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import hlc
from shared.hlc import LOGICAL_BITS, MAX_DRIFT_MS, ClockDriftError, HybridLogicalClock, pack, unpack

MAX_LOGICAL = (1 << LOGICAL_BITS) - 1
T0 = 1_700_000_000_000


class FakeWall:
    """A wall clock the test sets by hand (NTP steps, a dead RTC battery...)."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def _clock(ms: int = T0, **kwargs: int) -> tuple[HybridLogicalClock, FakeWall]:
    wall = FakeWall(ms)
    return HybridLogicalClock(wall_ms=wall, **kwargs), wall


def test_now_follows_the_wall_clock() -> None:
    clock, wall = _clock()
    assert clock.now() == pack(T0, 0)
    assert clock.now() == pack(T0, 1)  # same millisecond: the logical part counts
    wall.ms += 5
    assert clock.now() == pack(T0 + 5, 0)


def test_default_clock_is_close_to_real_time() -> None:
    clock = HybridLogicalClock()
    physical, _ = unpack(clock.now())
    assert abs(physical - hlc._wall_ms()) < 60_000


def test_monotonic_when_the_wall_clock_goes_backwards() -> None:
    clock, wall = _clock()
    stamps = [clock.now()]
    for step in (-1, -1000, -3_600_000, 0, +10, -5):
        wall.ms += step
        stamps.append(clock.now())
    assert stamps == sorted(set(stamps))
    # While the wall is behind, physical time holds and the logical part advances.
    assert unpack(stamps[2]) == (T0, 2)


def test_update_with_a_remote_ahead_moves_past_it() -> None:
    clock, _wall = _clock()
    clock.now()
    remote = pack(T0 + 30_000, 7)
    stamp = clock.update(remote)
    assert stamp > remote
    assert unpack(stamp) == (T0 + 30_000, 8)
    # Later local events stay after the remote one even though our wall is behind it.
    assert clock.now() > stamp


def test_update_with_a_remote_behind_still_advances() -> None:
    clock, _wall = _clock()
    before = clock.now()
    stamp = clock.update(pack(T0 - 10_000, 500))
    assert stamp > before
    assert unpack(stamp) == (T0, 1)


def test_update_with_a_remote_in_the_same_millisecond_takes_the_larger_counter() -> None:
    clock, _wall = _clock()
    clock.now()
    clock.now()  # (T0, 1)
    assert unpack(clock.update(pack(T0, 40))) == (T0, 41)
    assert unpack(clock.update(pack(T0, 3))) == (T0, 42)


def test_update_when_the_wall_is_ahead_of_everything() -> None:
    clock, wall = _clock()
    clock.now()
    wall.ms += 100
    assert clock.update(pack(T0 + 50, 9)) == pack(T0 + 100, 0)


def test_logical_overflow_in_update_borrows_the_next_millisecond() -> None:
    clock, _wall = _clock()
    stamp = clock.update(pack(T0, MAX_LOGICAL))
    assert stamp == pack(T0 + 1, 0)
    assert stamp > pack(T0, MAX_LOGICAL)
    assert unpack(stamp)[1] <= MAX_LOGICAL


def test_logical_overflow_in_now_borrows_the_next_millisecond() -> None:
    clock, _wall = _clock()
    stamps = [clock.now() for _ in range(MAX_LOGICAL + 2)]
    assert stamps[-2] == pack(T0, MAX_LOGICAL)
    assert stamps[-1] == pack(T0 + 1, 0)
    assert stamps == sorted(set(stamps))


def test_remote_too_far_ahead_raises_and_leaves_the_clock_alone() -> None:
    clock, _wall = _clock()
    clock.now()
    with pytest.raises(ClockDriftError):
        clock.update(pack(T0 + MAX_DRIFT_MS + 1, 0))
    assert clock.now() == pack(T0, 1)
    # Exactly at the limit is still causality, not a broken clock.
    assert clock.update(pack(T0 + MAX_DRIFT_MS, 0)) == pack(T0 + MAX_DRIFT_MS, 1)


def test_custom_max_drift() -> None:
    clock, _wall = _clock(max_drift_ms=10)
    with pytest.raises(ClockDriftError, match="ahead"):
        clock.update(pack(T0 + 11, 0))
    assert clock.update(pack(T0 + 10, 0)) == pack(T0 + 10, 1)


@settings(max_examples=200, deadline=None)
@given(
    physical=st.integers(min_value=0, max_value=2**53),
    logical=st.integers(min_value=0, max_value=MAX_LOGICAL),
)
def test_pack_unpack_round_trip(physical: int, logical: int) -> None:
    stamp = pack(physical, logical)
    assert unpack(stamp) == (physical, logical)
    assert stamp >= 0


@settings(max_examples=200, deadline=None)
@given(
    a=st.tuples(st.integers(0, 2**53), st.integers(0, MAX_LOGICAL)),
    b=st.tuples(st.integers(0, 2**53), st.integers(0, MAX_LOGICAL)),
)
def test_packed_stamps_sort_like_their_parts(a: tuple[int, int], b: tuple[int, int]) -> None:
    # The cloud sorts by the plain integer; it must agree with (physical, logical) order.
    assert (pack(*a) < pack(*b)) == (a < b)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("now"), st.integers(-5_000, 5_000), st.just(0), st.just(0)),
        st.tuples(
            st.just("update"),
            st.integers(-5_000, 5_000),  # wall step
            st.integers(-120_000, MAX_DRIFT_MS),  # remote physical relative to the wall
            st.integers(0, MAX_LOGICAL),
        ),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(ops=operations)
def test_any_sequence_of_now_and_update_is_strictly_increasing(
    ops: list[tuple[str, int, int, int]],
) -> None:
    clock, wall = _clock()
    last = -1
    for op, step, offset, logical in ops:
        wall.ms = max(0, wall.ms + step)
        if op == "now":
            stamp = clock.now()
        else:
            remote = pack(max(0, wall.ms + offset), logical)
            stamp = clock.update(remote)
            assert stamp > remote
        assert stamp > last
        assert unpack(stamp)[1] <= MAX_LOGICAL
        # Never behind the wall clock.
        assert unpack(stamp)[0] >= wall.ms
        last = stamp


def test_thread_safe() -> None:
    clock, _wall = _clock()
    results: list[list[int]] = [[] for _ in range(4)]

    def stamp_many(out: list[int]) -> None:
        for _ in range(2_000):
            out.append(clock.now())

    threads = [threading.Thread(target=stamp_many, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [stamp for out in results for stamp in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in results)
