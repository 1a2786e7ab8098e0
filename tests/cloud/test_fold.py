"""The twin fold and its sequence window, alone: no server, every rule by itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest.facts import Fact, parse
from cloud.twins.fold import FoldContext, fold
from cloud.twins.record import TwinRecord
from cloud.twins.seqwindow import HARD_MAX_RANGES, MAX_RANGES, SeqWindow
from shared import codec, hlc
from shared.messages import Reading, ReportedState

NOW = 1_800_000_000_000
CTX = FoldContext(now_ms=NOW, silent_after_ms=60_000)


def reading_fact(
    seq: int, at_ms: int = NOW - 1000, value: float = 1.0, stream_seq: int = 0
) -> Fact:
    body = Reading(device="d1", seq=seq, ts_ms=at_ms, metrics={"t": value})
    return Fact("gw1", "d1", "r", hlc.pack(at_ms, seq % 100), body, stream_seq)


def report_fact(version: int, at_ms: int) -> Fact:
    body = ReportedState(device="d1", gw="gw1", applied_version=version, state={"on": True})
    return Fact("gw1", "d1", "twin", hlc.pack(at_ms, 0), body)


def status_fact(online: bool, at_ms: int) -> Fact:
    return Fact("gw1", "d1", "status", hlc.pack(at_ms, 0), online)


def test_window_counts_out_of_order_and_ignores_repeats() -> None:
    window = SeqWindow()
    for seq in (0, 1, 2, 5, 4, 3, 10):
        window = window.mark(seq)
    assert window == SeqWindow(floor=5, ranges=((10, 10),))
    assert window.seen(3) and window.seen(10) and not window.seen(6)
    assert window.mark(4) is window


def every_other(count: int, first_stream_seq: int = 100) -> SeqWindow:
    """seq 0, 2, 4 ... applied, each from FLEET stream sequence `first_stream_seq` + seq."""
    window = SeqWindow()
    for seq in range(0, 2 * count, 2):
        window = window.mark(seq, at=first_stream_seq + seq)
    return window


def test_window_keeps_every_gap_until_its_fillers_have_settled() -> None:
    window = every_other(2 * MAX_RANGES)  # floor 0, then a gap below each of 2, 4, ... 126
    assert len(window.ranges) == 2 * MAX_RANGES - 1
    # Nothing has settled: whatever fills these gaps may still be in FLEET.
    assert window.settle(settled=0) == (window, 0)
    # The ack floor passed the readings that opened the gaps below 2..20: those are
    # permanent, and given up, oldest first; the rest stay open however many there are.
    settled, forced = window.settle(settled=100 + 20)
    assert forced == 0 and settled.floor == 20 and len(settled.ranges) == 2 * MAX_RANGES - 11
    assert settled.seen(19) and not settled.seen(21)
    # Once all have settled, the window is back to its bound, the newest gaps kept.
    bounded, _ = window.settle(settled=10**6)
    assert len(bounded.ranges) == MAX_RANGES
    assert not bounded.seen(bounded.highest - 1)


def test_window_gives_up_unsettled_gaps_only_past_its_hard_bound() -> None:
    window = every_other(HARD_MAX_RANGES + 10)
    bounded, forced = window.settle(settled=0)
    assert len(bounded.ranges) == HARD_MAX_RANGES and forced == 9
    assert not bounded.seen(bounded.highest - 1)


def test_window_of_a_record_written_without_opened_counts_its_gaps_as_settled() -> None:
    window = SeqWindow(floor=0, ranges=tuple((seq, seq) for seq in range(2, 80, 2)))
    assert window.opened == (0,) * len(window.ranges)
    assert len(window.settle(settled=0)[0].ranges) == MAX_RANGES


@given(st.lists(st.integers(0, 300), max_size=200))
def test_window_agrees_with_a_set(seqs: list[int]) -> None:
    window = SeqWindow()
    for seq in seqs:
        window = window.mark(seq)
    applied = set(seqs)
    # Marking never gives a gap up: the window is exactly the set.
    assert {seq for seq in range(302) if window.seen(seq)} == applied


@given(st.lists(st.integers(0, 300), max_size=200))
def test_settling_forgets_no_reading_and_no_gap_still_in_flight(seqs: list[int]) -> None:
    window = SeqWindow()
    for stream_seq, seq in enumerate(seqs, start=1):
        window = window.mark(seq, at=stream_seq)
    assert window.settle(settled=0) == (window, 0)  # nothing settled: nothing given up
    after, forced = window.settle(settled=len(seqs))  # all settled: back to the bound
    assert forced == 0 and len(after.ranges) == min(len(window.ranges), MAX_RANGES)
    assert all(after.seen(seq) for seq in seqs)  # nothing applied is ever forgotten


def test_readings_of_a_failed_write_count_when_redelivered_after_many_others() -> None:
    # Two workers split one device's readings in turn; the odd ones' twin write failed
    # and they are nak'd, while the even ones are applied: a gap at every odd seq, far
    # more than MAX_RANGES. The ack floor is below the odd ones: they are in flight.
    ctx = FoldContext(now_ms=NOW, silent_after_ms=60_000, settled_seq=1000)
    evens = [reading_fact(seq, stream_seq=1001 + seq) for seq in range(0, 200, 2)]
    half = fold(None, evens, ctx)
    assert len(half.record.seq_ranges) > MAX_RANGES
    odds = [reading_fact(seq, stream_seq=1001 + seq) for seq in range(1, 200, 2)]
    whole = fold(half.record, odds, ctx)
    assert not whole.duplicates and whole.gaps_forced == 0
    record = whole.record
    assert (record.readings, record.seq_floor, record.seq_ranges) == (200, 199, [])


def test_permanent_gaps_are_given_up_once_the_ack_floor_passes_them() -> None:
    # Every third reading was lost on the radio; everything forwarded has been acked.
    ctx = FoldContext(now_ms=NOW, silent_after_ms=60_000, settled_seq=10**6)
    facts = [reading_fact(seq, stream_seq=1 + seq) for seq in range(300) if seq % 3]
    record = fold(None, facts, ctx).record
    assert record.readings == 200 and len(record.seq_ranges) == MAX_RANGES


def test_each_reading_counts_once_however_often_it_comes() -> None:
    facts = [reading_fact(seq) for seq in (0, 1, 2)]
    first = fold(None, facts, CTX)
    again = fold(first.record, [*facts, reading_fact(1)], CTX)
    assert first.record.readings == 3
    assert not again.changed and len(again.duplicates) == 4
    assert again.record == first.record


def test_newest_reading_is_chosen_by_hlc_not_arrival() -> None:
    late = reading_fact(7, at_ms=NOW - 5000, value=7.0)
    newest = reading_fact(8, at_ms=NOW - 1000, value=8.0)
    record = fold(None, [newest, late], CTX).record
    assert (record.last_seq, record.last_metrics) == (8, {"t": 8.0})
    assert record.readings == 2


@settings(max_examples=50)
@given(st.permutations([*range(6), 6, 3]))
def test_fold_does_not_depend_on_arrival_order(order: list[int]) -> None:
    facts = [reading_fact(seq, at_ms=NOW - 10_000 + seq) for seq in order]
    reference = fold(None, sorted(facts, key=lambda f: f.hlc), CTX).record
    record = fold(None, facts, CTX).record
    assert record.model_dump(exclude={"traceparent"}) == reference.model_dump(
        exclude={"traceparent"}
    )


def test_report_of_the_desired_version_converges_once() -> None:
    base = fold(None, [reading_fact(0)], CTX).record
    wanted = base.model_copy(
        update={"desired_version": 2, "desired": {"on": True}, "desired_ms": NOW - 250}
    )
    assert not fold(wanted, [report_fact(1, NOW - 100)], CTX).record.converged
    done = fold(wanted, [report_fact(2, NOW - 50)], CTX)
    assert done.convergence_ms == 250 and done.record.converged
    assert fold(done.record, [report_fact(2, NOW - 40)], CTX).convergence_ms is None


def test_offline_status_wins_only_when_newest() -> None:
    online = fold(None, [reading_fact(0, at_ms=NOW - 2000)], CTX).record
    stale = fold(online, [status_fact(False, NOW - 3000)], CTX).record
    assert stale.online
    gone = fold(online, [status_fact(False, NOW - 1000)], CTX).record
    assert not gone.online
    back = fold(gone, [reading_fact(1, at_ms=NOW - 500)], CTX)
    assert back.record.online and back.came_online


def test_device_back_with_drift_clears_the_resend_backoff() -> None:
    record = fold(None, [reading_fact(0)], CTX).record.model_copy(
        update={"online": False, "desired_version": 3, "sent_ms": NOW - 10}
    )
    back = fold(record, [reading_fact(1)], CTX)
    assert back.came_online and back.record.sent_ms == 0


def test_backlog_older_than_silence_does_not_bring_a_device_online() -> None:
    old = NOW - 10 * 60_000
    record = fold(None, [reading_fact(0, at_ms=old)], CTX).record
    assert not record.online and record.readings == 1


def test_record_round_trips_and_reads_as_a_plain_twin() -> None:
    from shared.messages import TwinState

    record = fold(None, [reading_fact(4), reading_fact(9)], CTX).record
    data = record.encode()
    assert TwinRecord.decode(data) == record
    plain = codec.decode(data, TwinState)
    assert (plain.gw, plain.device, plain.last_seen_ms) == ("gw1", "d1", record.last_seen_ms)


def test_a_report_or_status_replayed_after_the_duplicate_window_changes_nothing() -> None:
    # The gateway re-sends them later, with another header; each fact keeps its own
    # stamp (the daemon's in a report, the leaf's store time for a status), so the fold
    # sees them for what they are: already applied.
    def twin_msg(version: int, made_ms: int, sent_ms: int) -> Fact:
        body = ReportedState(
            device="d1", gw="gw1", applied_version=version, hlc=hlc.pack(made_ms, 0)
        )
        headers = {"Baton-Hlc": str(hlc.pack(sent_ms, 0))}
        return parse("fleet.gw1.twin.d1", headers, codec.encode(body), now_ms=NOW)

    def status_msg(online: bool, stored_ms: int) -> Fact:
        headers = {"Baton-Hlc": str(hlc.pack(stored_ms, 0))}
        return parse(
            "fleet.gw1.status.d1", headers, b"online" if online else b"offline", now_ms=NOW
        )

    first = [twin_msg(1, NOW - 900, NOW - 800), status_msg(False, NOW - 700)]
    first += [twin_msg(2, NOW - 600, NOW - 500), status_msg(True, NOW - 400)]
    applied = fold(None, first, CTX).record
    replayed = [twin_msg(1, NOW - 900, NOW - 50), status_msg(False, NOW - 700)]
    again = fold(applied, replayed, CTX)
    assert not again.changed and len(again.duplicates) == 2
    assert (again.record.reported_version, again.record.online) == (2, True)
