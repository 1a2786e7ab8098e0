"""The dashboard's taps: FLEET messages, plan records and session frames → spans, picks,
flow and the handoff timeline (no server needed)."""

from __future__ import annotations

import pytest
from dashkit import GW, ack_for, decision_for, fleet_message, reading

from cloud.dashboard.fleettap import Commands, FleetTap
from cloud.dashboard.flow import Flow
from cloud.dashboard.plantap import PlanTap
from cloud.dashboard.sessiontap import SessionTap
from cloud.dashboard.spans import Ids
from cloud.dashboard.traces import MAX_TRACES, TraceStore
from cloud.planner.records import PlanRecord, StepEvent
from shared import codec, trace
from shared.messages import (
    AgentComplete,
    AgentEventBase,
    AgentStart,
    CommandAck,
    ContentChunk,
    GatewayEvent,
    HandoffAbort,
    HandoffAccept,
    HandoffComplete,
    HandoffRequest,
    HandoffSnapshot,
    Plan,
    PlanStep,
)
from shared.session.frames import pack

T0 = 1_800_000_000_000


def taps() -> tuple[TraceStore, Flow, FleetTap, PlanTap]:
    store, flow, commands = TraceStore(), Flow(), Commands()
    return store, flow, FleetTap(store, flow, commands), PlanTap(store, flow, commands)


def feed(tap: FleetTap, kind: str, device: str, message: object, *, edge_ms: int, hub_ms: int,
         seen_ms: int) -> None:  # fmt: skip
    subject, headers, data = fleet_message(kind, device, message, edge_ms=edge_ms)  # type: ignore[arg-type]
    tap.on_message(subject, headers, data, hub_ms=hub_ms, seen_ms=seen_ms)


def test_a_reading_has_a_hop_at_edge_hub_and_cloud_with_its_times() -> None:
    store, flow, fleet, _ = taps()
    r = reading(ts_ms=T0)
    feed(fleet, "r", r.device, r, edge_ms=T0 + 4, hub_ms=T0 + 6, seen_ms=T0 + 9)

    trace_id = trace.TraceContext.parse(r.traceparent).trace_id
    spans = store.spans(trace_id)
    assert [(s.where, s.start_ms, s.end_ms) for s in spans] == [
        ("edge", T0, T0 + 4),
        ("hub", T0 + 4, T0 + 6),
        ("cloud", T0 + 6, T0 + 9),
    ]
    # The sensor's own span id starts the chain; each hop is the child of the one before.
    assert spans[0].span_id == Ids.of(r.traceparent).span_id  # type: ignore[union-attr]
    assert [s.parent_id for s in spans[1:]] == [spans[0].span_id, spans[1].span_id]
    assert flow.readings == 1
    assert store.picks("reading")[0].trace_id == trace_id


def test_a_replayed_message_adds_no_span() -> None:
    store, _, fleet, _ = taps()
    r = reading(ts_ms=T0)
    subject, headers, data = fleet_message("r", r.device, r, edge_ms=T0 + 1)
    for _ in range(2):  # an ordered consumer re-created after a gap delivers it again
        fleet.on_message(subject, headers, data, hub_ms=T0 + 2, seen_ms=T0 + 3)
    assert len(store.spans(Ids.of(r.traceparent).trace_id)) == 3  # type: ignore[union-attr]


def test_reflex_decision_and_device_ack_join_the_reading_trace() -> None:
    store, flow, fleet, _ = taps()
    r = reading(ts_ms=T0)
    d = decision_for(r, ts_ms=T0 + 5, latency_us=400)
    feed(fleet, "r", r.device, r, edge_ms=T0 + 4, hub_ms=T0 + 6, seen_ms=T0 + 9)
    feed(fleet, "dec", r.device, d, edge_ms=T0 + 5, hub_ms=T0 + 7, seen_ms=T0 + 9)
    feed(fleet, "ack", r.device, ack_for(d, ts_ms=T0 + 30), edge_ms=T0 + 31,
         hub_ms=T0 + 33, seen_ms=T0 + 35)  # fmt: skip

    spans = {s.name: s for s in store.spans(Ids.of(r.traceparent).trace_id)}  # type: ignore[union-attr]
    reflex = spans["reflex overheat → fan"]
    assert reflex.where == "edge" and reflex.duration_ms == pytest.approx(0.4, abs=0.001)
    device = spans[f"device {GW}/pump-0 fan: ok"]
    assert (device.where, device.start_ms, device.end_ms) == ("sensor", T0 + 5, T0 + 30)
    assert device.parent_id == reflex.span_id
    assert flow.reflex == 1
    assert "fan" in store.picks("command")[0].label


def test_gateway_quarantine_and_stats_events_feed_the_flow() -> None:
    _, flow, fleet, _ = taps()
    for reason in ("malformed", "malformed", "too_large"):
        event = GatewayEvent(gw=GW, device=GW, type="quarantine", data={"reason": reason})
        feed(fleet, "ev", GW, event, edge_ms=T0, hub_ms=T0, seen_ms=T0)
    stats = GatewayEvent(gw=GW, device=GW, type="stats", data={"readings_ok": 40, "backlog": 7,
                                                    "quarantined": {"invalid": 2}})  # fmt: skip
    feed(fleet, "ev", GW, stats, edge_ms=T0, hub_ms=T0, seen_ms=T0)

    out = flow.to_json()
    assert out["quarantine"] == {"invalid": 2, "malformed": 2, "too_large": 1}
    links = {(link["source"], link["target"]): link["value"] for link in out["links"]}
    assert links[("sensors", "quarantine")] == 5
    assert links[("sensors", "edge")] == 40  # the gateway processed more than reached the hub
    assert out["backlog"] == {GW: 7}


def test_a_message_ingest_refuses_is_skipped() -> None:
    store, flow, fleet, _ = taps()
    fleet.on_message("fleet.gw1.r.pump-0", {}, b"\xc1 not msgpack", hub_ms=T0, seen_ms=T0)
    fleet.on_message("not.a.fleet.subject.at.all", {}, b"", hub_ms=T0, seen_ms=T0)
    assert len(store) == 0 and flow.readings == 0


def test_the_store_keeps_a_bounded_number_of_traces() -> None:
    store, _, fleet, _ = taps()
    for seq in range(MAX_TRACES + 10):
        r = reading(seq=seq, ts_ms=T0)
        feed(fleet, "r", r.device, r, edge_ms=T0, hub_ms=T0, seen_ms=T0)
    assert len(store) == MAX_TRACES
    assert len(store.picks("reading", limit=1000)) == 200


def _plan_record(tp: str, *events: StepEvent) -> PlanRecord:
    step = PlanStep(index=0, gw=GW, device="bearing-1", action="set_load",
                    params={"load": 0.5}, deadline_ms=10_000)  # fmt: skip
    plan = Plan(plan_id="p1", trigger="anomaly", reason="bearing", steps=[step], created_ms=T0,
                traceparent=tp)  # fmt: skip
    return PlanRecord(plan=plan, key="k", scope="s", history=list(events))


def test_plan_steps_become_spans_and_their_device_acks_join_them() -> None:
    store, flow, fleet, plans = taps()
    tp = trace.new_traceparent()
    opened = StepEvent(event="opened", ts_ms=T0)
    sent = StepEvent(event="sent", index=0, ts_ms=T0 + 10, cmd_id="c1")
    plans.on_record(_plan_record(tp, opened, sent))
    plans.on_record(
        _plan_record(tp, opened, sent, StepEvent(event="acked", index=0, ts_ms=T0 + 50))
    )

    trace_id = Ids.of(tp).trace_id  # type: ignore[union-attr]
    names = [s.name for s in store.spans(trace_id)]
    # The ended step replaced the span of the step still waiting for its ack.
    assert "step 0 set_load gw1/bearing-1 → acked" in names
    assert not any("waiting" in n for n in names)
    assert flow.planned == 1  # an anomaly plan comes from a reflex decision
    assert store.picks("plan_step")[0].label == "plan anomaly: step 0 set_load on gw1/bearing-1"

    # The device's ack of the step's command lands in the plan's trace.
    ack = CommandAck(cmd_id="c1", device="bearing-1", ok=True, ts_ms=T0 + 40,
                     traceparent=trace.child_of(tp))  # fmt: skip
    subject, headers, data = fleet_message("ack", "bearing-1", ack, edge_ms=T0 + 40)
    fleet.on_message(subject, headers, data, hub_ms=T0 + 45, seen_ms=T0 + 46)
    device = [s for s in store.spans(trace_id) if s.name.startswith("device gw1/bearing-1")]
    assert [(s.start_ms, s.end_ms) for s in device] == [(T0 + 10, T0 + 40)]


def test_session_frames_make_agent_streams_and_a_handoff_with_its_steps() -> None:
    store = TraceStore()
    tap = SessionTap(store)
    tp = trace.new_traceparent()
    events = [
        HandoffRequest(session="s1", seq=1, to="cloud", reason="fleet data", ts_ms=T0,
                       traceparent=tp),
        HandoffSnapshot(session="s1", seq=2, size=2048, ts_ms=T0 + 3),
        HandoffAccept(session="s1", seq=3, owner="cloud", ts_ms=T0 + 7, epoch=2),
        HandoffComplete(session="s1", seq=4, owner="cloud", latency_ms=9.5, ts_ms=T0 + 9,
                        epoch=2),
    ]  # fmt: skip
    update = tap.on_frame(pack([codec.encode(e) for e in events]))

    handoff = update.handoffs[-1]
    assert handoff.state == "completed" and handoff.latency_ms == 9.5
    assert [(s.name, s.ms) for s in handoff.steps] == [
        ("request", 0.0), ("snapshot 2048 B", 3.0), ("accepted by cloud", 4.0),
        ("complete: cloud owns it", 2.0),
    ]  # fmt: skip
    assert tap.streams["s1"].owner == "cloud" and tap.streams["s1"].epoch == 2
    assert store.picks("handoff")[0].trace_id == Ids.of(tp).trace_id  # type: ignore[union-attr]
    assert len(store.spans(handoff.trace_id)) == 4
    # The same frame again (a replayed log) changes nothing.
    assert tap.on_frame(pack([codec.encode(e) for e in events])).handoffs == []


def test_a_request_nothing_follows_stays_a_suggestion() -> None:
    tap = SessionTap(TraceStore())
    asked = HandoffRequest(session="s2", seq=1, to="cloud", reason="needs_fleet", ts_ms=T0)
    update = tap.on_frame(pack([codec.encode(asked)]))
    assert [h.state for h in update.handoffs] == ["requested"]


def _frame(*events: AgentEventBase) -> bytes:
    return pack([codec.encode(e) for e in events])


def _two_handoffs_and_a_late_frame() -> list[bytes]:
    """A session's log, frame by frame, as SESSIONS holds it after a hub restart: edge →
    cloud (replica r1, epoch 2); r1's last frame lands late, after replica r2 (epoch 3)
    had read the log's end and reclaimed the session, so r2 numbers on from below it
    (shared/session/log.py, a foreign append); r2 hands it back to the edge (epoch 4)."""
    s, tp = "s1", trace.new_traceparent
    return [
        _frame(AgentStart(session=s, seq=1, epoch=1, ts_ms=T0),
               AgentComplete(session=s, seq=2, epoch=1, text="fan on", ts_ms=T0 + 1)),
        _frame(HandoffRequest(session=s, seq=3, epoch=1, to="cloud", ts_ms=T0 + 2,
                              traceparent=tp()),
               HandoffSnapshot(session=s, seq=4, epoch=1, size=900, ts_ms=T0 + 3)),
        _frame(HandoffAccept(session=s, seq=5, epoch=2, owner="cloud", ts_ms=T0 + 4),
               HandoffComplete(session=s, seq=6, epoch=2, owner="cloud", latency_ms=2.0,
                               ts_ms=T0 + 5)),
        _frame(AgentStart(session=s, seq=7, epoch=2, ts_ms=T0 + 6)),
        _frame(ContentChunk(session=s, seq=8, epoch=2, text="pump-0 ", ts_ms=T0 + 7),
               AgentComplete(session=s, seq=9, epoch=2, text="pump-0", ts_ms=T0 + 8)),
        _frame(HandoffAbort(session=s, seq=8, epoch=3, reason="reclaimed from cloud:r1",
                            ts_ms=T0 + 20),
               HandoffRequest(session=s, seq=9, epoch=3, to="edge", ts_ms=T0 + 21,
                              traceparent=tp()),
               HandoffSnapshot(session=s, seq=10, epoch=3, size=950, ts_ms=T0 + 22)),
        _frame(HandoffAccept(session=s, seq=11, epoch=4, owner="edge", ts_ms=T0 + 23),
               HandoffComplete(session=s, seq=12, epoch=4, owner="edge", latency_ms=3.0,
                               ts_ms=T0 + 24)),
    ]  # fmt: skip


def _rows(tap: SessionTap) -> list[tuple[str, str, str, list[str]]]:
    return [(h.id, h.to, h.state, [s.name for s in h.steps]) for h in tap.handoffs.values()]


BOTH = [
    ("s1-1-3", "cloud", "completed",
     ["request", "snapshot 900 B", "accepted by cloud", "complete: cloud owns it"]),
    ("s1-3-9", "edge", "completed",
     ["request", "snapshot 950 B", "accepted by edge", "complete: edge owns it"]),
]  # fmt: skip


def test_a_newer_owner_numbering_on_below_a_late_frame_is_not_a_replay() -> None:
    tap = SessionTap(TraceStore())
    for data in _two_handoffs_and_a_late_frame():
        tap.on_frame(data)
    assert _rows(tap) == BOTH
    stream = tap.streams["s1"]
    assert (stream.owner, stream.epoch, stream.last_seq) == ("edge", 4, 12)


@pytest.mark.parametrize("start", [0, 2, 5, 6])
def test_a_replayed_log_neither_drops_nor_duplicates_a_handoff(start: int) -> None:
    log = _two_handoffs_and_a_late_frame()
    tap = SessionTap(TraceStore())
    for data in log:
        tap.on_frame(data)
    # An ordered consumer re-created after a hub restart reads from an earlier position.
    replayed = [tap.on_frame(data) for data in log[start:]]
    assert all(u.handoffs == [] and u.agent == [] for u in replayed)
    assert _rows(tap) == BOTH
    # A replica that starts again folds the same log into the same rows.
    fresh = SessionTap(TraceStore())
    for data in [*log, *log]:
        fresh.on_frame(data)
    assert _rows(fresh) == BOTH


def test_a_fenced_owners_frame_seen_late_changes_nothing() -> None:
    tap = SessionTap(TraceStore())
    log = _two_handoffs_and_a_late_frame()
    for data in log:
        tap.on_frame(data)
    late = _frame(ContentChunk(session="s1", seq=13, epoch=2, text="stale", ts_ms=T0 + 30))
    assert tap.on_frame(late).agent == []
    assert "stale" not in tap.streams["s1"].text and _rows(tap) == BOTH
