"""Leaf subject → hub subject and Nats-Msg-Id, without a server."""

from __future__ import annotations

import pytest

from edge.uplink import routing
from edge.uplink.pipeline import Outgoing
from edge.uplink.routing import GATEWAY, HLC, MSG_ID, TRACEPARENT, Unroutable
from shared import codec, subjects, trace
from shared.errors import DecodeError
from shared.messages import CommandAck, Reading

GW = "gw1"


def _route(
    subject: str, data: bytes, headers: dict[str, str] | None = None, seq: int = 9
) -> Outgoing:
    return routing.route(subject, data, headers, stream_seq=seq, gateway=GW, hlc=77)


def test_reading_goes_to_fleet_keyed_by_its_seq_as_a_child_span() -> None:
    reading = Reading(device="d1", seq=42, ts_ms=1, metrics={"t": 20.5})
    out = _route("baton.d.d1.r", codec.encode(reading))
    assert out.subject == "fleet.gw1.r.d1"
    assert out.headers[MSG_ID] == subjects.msg_id(GW, "d1", "r", 42)
    assert out.headers[GATEWAY] == GW
    assert out.headers[HLC] == "77"
    parent = trace.TraceContext.parse(reading.traceparent)
    child = trace.TraceContext.parse(out.headers[TRACEPARENT])
    assert (child.trace_id, child.span_id != parent.span_id) == (parent.trace_id, True)


def test_payload_crosses_unchanged_even_as_json() -> None:
    data = codec.encode_json(Reading(device="d1", seq=1, ts_ms=1, metrics={"t": 1.0}))
    assert _route("baton.d.d1.r", data).payload is data


def test_ack_is_keyed_by_cmd_id_and_status_by_stream_seq() -> None:
    ack = CommandAck(cmd_id="c-1", device="d2", ok=True)
    assert _route("baton.d.d2.ack", codec.encode(ack)).headers[MSG_ID] == "gw1/d2/ack/c-1"
    status = _route("baton.d.d2.status", b"offline", seq=31)
    assert (status.subject, status.headers[MSG_ID]) == ("fleet.gw1.status.d2", "gw1/d2/status/31")


def test_submitted_items_keep_their_id_and_trace() -> None:
    parent = trace.new_traceparent()
    headers = {MSG_ID: "gw1/d3/dec/abc", TRACEPARENT: parent}
    out = _route("uplink.gw1.dec.d3", b"{}", headers)
    assert (out.subject, out.headers[MSG_ID]) == ("fleet.gw1.dec.d3", "gw1/d3/dec/abc")
    assert trace.TraceContext.parse(out.headers[TRACEPARENT]).trace_id == parent[3:35]


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        ("baton.d.d1.r", b"\xc1garbage", "malformed"),
        ("baton.d.d1.r", b'{"v":1,"kind":"reading","device":"d1"}', "invalid"),
        (
            "baton.d.d1.r",
            codec.encode(Reading(device="d9", seq=1, ts_ms=1, metrics={"t": 1.0})),
            "unroutable",
        ),
        ("uplink.gw2.dec.d1", b"{}", "unroutable"),
        ("uplink.gw1.nope.d1", b"{}", "unroutable"),
        ("baton.d.d1.r.extra", b"{}", "unroutable"),
    ],
)
def test_what_the_hub_must_not_get_is_refused_with_a_reason(
    subject: str, data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        _route(subject, data, {MSG_ID: "x"})
    assert caught.value.reason == reason
    assert isinstance(caught.value, Unroutable) == (reason == "unroutable")


def test_the_hlc_of_a_stored_message_is_its_store_time_in_order() -> None:
    # Baton-Hlc is when the leaf stored the message: the same on every delivery of it
    # (a re-send after the hub's duplicate window included), in store order.
    from edge.uplink.forwarder import stored_ns
    from shared import hlc

    at = 1_800_000_000_123_456_789
    stamp = routing.stored_hlc(at)
    assert hlc.unpack(stamp) == (1_800_000_000_123, 4567)
    assert routing.stored_hlc(at + 100) > stamp > routing.stored_hlc(at - 100)

    class Delivery:
        reply = f"$JS.ACK.edge-gw1.ACCHASH.UPLINK.forwarder.1.42.7.{at}.0.TOKEN"

    assert stored_ns(Delivery()) == at  # type: ignore[arg-type]
    Delivery.reply = f"$JS.ACK.UPLINK.forwarder.1.42.7.{at}.0"
    assert stored_ns(Delivery()) == at  # type: ignore[arg-type]
