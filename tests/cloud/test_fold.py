"""The twin fold and its sequence window, alone: no server, every rule by itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest.facts import Fact
from cloud.twins.fold import FoldContext, fold
from cloud.twins.record import TwinRecord
from cloud.twins.seqwindow import MAX_RANGES, SeqWindow
from shared import hlc
from shared.messages import Reading, ReportedState

NOW = 1_800_000_000_000
CTX = FoldContext(now_ms=NOW, silent_after_ms=60_000)


def reading_fact(seq: int, at_ms: int = NOW - 1000, value: float = 1.0) -> Fact:
    body = Reading(device="d1", seq=seq, ts_ms=at_ms, metrics={"t": value})
    return Fact("gw1", "d1", "r", hlc.pack(at_ms, seq % 100), body)


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


def test_window_gives_up_on_old_gaps_only_past_its_bound() -> None:
    window = SeqWindow()
    for seq in range(0, 4 * MAX_RANGES, 2):  # every other seq missing: many gaps
        window = window.mark(seq)
    assert len(window.ranges) == MAX_RANGES
    assert not window.seen(window.highest - 1)  # a recent gap is still open


@given(st.lists(st.integers(0, 300), max_size=200))
def test_window_agrees_with_a_set(seqs: list[int]) -> None:
    window = SeqWindow()
    for seq in seqs:
        window = window.mark(seq)
    applied = set(seqs)
    assert all(window.seen(seq) for seq in applied)  # nothing applied is ever forgotten
    runs = sum(1 for seq in applied if seq - 1 not in applied)
    if runs <= MAX_RANGES:  # no gap given up on: the window is exactly the set
        assert {seq for seq in range(301) if window.seen(seq)} == applied


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
    from shared import codec
    from shared.messages import TwinState

    record = fold(None, [reading_fact(4), reading_fact(9)], CTX).record
    data = record.encode()
    assert TwinRecord.decode(data) == record
    plain = codec.decode(data, TwinState)
    assert (plain.gw, plain.device, plain.last_seen_ms) == ("gw1", "d1", record.last_seen_ms)
