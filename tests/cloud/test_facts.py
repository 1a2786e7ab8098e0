"""Parsing FLEET messages: every refusal has its reason, nothing raises anything else."""

from __future__ import annotations

import json

import pytest

from cloud.errors import Rejected
from cloud.ingest.facts import parse
from shared import codec, hlc
from shared.messages import Decision, GatewayEvent, Reading, ReportedState

NOW = 1_800_000_000_000


def reading(device: str = "d1", **fields: object) -> bytes:
    return codec.encode(Reading(device=device, seq=1, ts_ms=NOW, metrics={"t": 1.0}, **fields))  # type: ignore[arg-type]


def test_reading_with_gateway_headers() -> None:
    stamp = hlc.pack(NOW, 3)
    fact = parse(
        "fleet.gw1.r.d1", {"Baton-Hlc": str(stamp), "Baton-Gateway": "gw1"}, reading(), now_ms=NOW
    )
    assert (fact.gw, fact.device, fact.kind, fact.hlc, fact.key) == (
        "gw1",
        "d1",
        "r",
        stamp,
        "gw1.d1",
    )
    assert isinstance(fact.body, Reading)


def test_missing_hlc_falls_back_to_the_device_time() -> None:
    fact = parse("fleet.gw1.r.d1", None, reading(), now_ms=NOW)
    assert fact.hlc == hlc.pack(NOW, 0)


def test_status_and_report() -> None:
    assert parse("fleet.gw1.status.d1", None, b"offline", now_ms=NOW).body is False
    body = codec.encode(ReportedState(device="d1", gw="gw1", applied_version=2))
    assert isinstance(parse("fleet.gw1.twin.d1", None, body, now_ms=NOW).body, ReportedState)


@pytest.mark.parametrize(
    ("subject", "headers", "data", "reason"),
    [
        ("fleet.gw1.r", None, reading(), "bad_subject"),
        ("fleet.gw1.zz.d1", None, reading(), "unknown_kind"),
        ("fleet.g*1.r.d1", None, reading(), "bad_subject"),
        ("fleet.gw1.r.d1", None, b"\xc1\xff garbage", "malformed"),
        ("fleet.gw1.r.d1", None, b'{"v": 1, "kind": "reading", "device": "d1"}', "invalid"),
        ("fleet.gw1.r.d1", None, b'{"v": 9, "kind": "reading"}', "schema_version"),
        ("fleet.gw1.r.d1", None, b"x" * 300_000, "too_large"),
        ("fleet.gw1.r.d2", None, reading("d1"), "device_mismatch"),
        ("fleet.gw1.r.d1", None, reading(gw="gw2"), "gateway_mismatch"),
        ("fleet.gw1.r.d1", {"Baton-Gateway": "gw2"}, reading(), "gateway_mismatch"),
        ("fleet.gw1.r.d1", {"Baton-Hlc": "soon"}, reading(), "bad_hlc"),
        (
            "fleet.gw1.r.d1",
            {"Baton-Hlc": str(hlc.pack(NOW + 3_600_000, 0))},
            reading(),
            "clock_drift",
        ),
        ("fleet.gw1.status.d1", None, b"maybe", "bad_status"),
    ],
)
def test_refusals_carry_a_reason(
    subject: str, headers: dict[str, str] | None, data: bytes, reason: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse(subject, headers, data, now_ms=NOW)
    assert caught.value.reason == reason


def test_nan_in_json_is_refused_as_non_finite() -> None:
    data = json.dumps(
        {
            "v": 1,
            "kind": "reading",
            "device": "d1",
            "seq": 1,
            "ts_ms": NOW,
            "metrics": {"t": float("nan")},
        }
    ).encode()
    with pytest.raises(Rejected) as caught:
        parse("fleet.gw1.r.d1", None, data, now_ms=NOW)
    assert caught.value.reason == "non_finite"


def test_a_decision_on_the_reading_subject_is_refused() -> None:
    decision = codec.encode(
        Decision(gw="gw1", device="d1", source="rule", name="hot", version="1", latency_us=5)
    )
    with pytest.raises(Rejected) as caught:
        parse("fleet.gw1.r.d1", None, decision, now_ms=NOW)
    assert caught.value.reason == "invalid"


@pytest.mark.parametrize("device", [None, "d1"])
def test_a_gateway_event_on_the_gateways_own_subject_is_accepted(device: str | None) -> None:
    event = GatewayEvent(gw="gw1", device=device, type="quarantine", data={"reason": "malformed"})
    fact = parse("fleet.gw1.ev.gw1", {"Baton-Gateway": "gw1"}, codec.encode(event), now_ms=NOW)
    assert (fact.gw, fact.device, fact.kind) == ("gw1", "gw1", "ev")
    assert isinstance(fact.body, GatewayEvent) and fact.body.device == device


@pytest.mark.parametrize(
    ("subject", "event", "reason"),
    [
        # On a device's subject the event must be about that device.
        ("fleet.gw1.ev.d2", GatewayEvent(gw="gw1", device="d1", type="twin_refused"),
         "device_mismatch"),
        ("fleet.gw1.ev.d2", GatewayEvent(gw="gw1", type="stats"), "device_mismatch"),
        # The gateway's own subject still vouches for that gateway only.
        ("fleet.gw1.ev.gw1", GatewayEvent(gw="gw2", type="stats"), "gateway_mismatch"),
    ],
)  # fmt: skip
def test_gateway_events_elsewhere_are_still_checked(
    subject: str, event: GatewayEvent, reason: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse(subject, None, codec.encode(event), now_ms=NOW)
    assert caught.value.reason == reason


def test_only_a_gateway_event_may_use_the_gateways_own_subject_freely() -> None:
    decision = Decision(gw="gw1", device="d1", source="rule", name="hot", version="1", latency_us=5)
    with pytest.raises(Rejected) as caught:
        parse("fleet.gw1.ev.gw1", None, codec.encode(decision), now_ms=NOW)
    assert caught.value.reason == "device_mismatch"


def report(**fields: object) -> bytes:
    return codec.encode(ReportedState(device="d1", gw="gw1", applied_version=2, **fields))  # type: ignore[arg-type]


def test_a_report_is_ordered_by_the_stamp_the_daemon_made_it_with() -> None:
    # A copy re-sent after the duplicate window carries another header; the same fact
    # must keep the same place in the order.
    made, forwarded = hlc.pack(NOW - 5_000, 2), hlc.pack(NOW, 0)
    fact = parse("fleet.gw1.twin.d1", {"Baton-Hlc": str(forwarded)}, report(hlc=made), now_ms=NOW)
    assert fact.hlc == made


def test_a_report_without_a_stamp_falls_back_to_the_header() -> None:
    stored = hlc.pack(NOW - 100, 7)
    fact = parse("fleet.gw1.twin.d1", {"Baton-Hlc": str(stored)}, report(), now_ms=NOW)
    assert fact.hlc == stored


def test_a_devices_own_stamp_does_not_order_its_reading() -> None:
    # Readings, acks and status come from the device: the gateway's header (when the
    # leaf stored it) orders them, not whatever the device wrote into the payload.
    stored = hlc.pack(NOW - 100, 7)
    data = reading(hlc=hlc.pack(NOW - 9_000, 0))
    assert parse("fleet.gw1.r.d1", {"Baton-Hlc": str(stored)}, data, now_ms=NOW).hlc == stored


@pytest.mark.parametrize(
    ("headers", "data", "reason"),
    [
        ({"Baton-Hlc": "soon"}, report(hlc=hlc.pack(NOW, 0)), "bad_hlc"),
        (None, report(hlc=hlc.pack(NOW + 3_600_000, 0)), "clock_drift"),
    ],
)
def test_a_stamped_report_is_still_checked(
    headers: dict[str, str] | None, data: bytes, reason: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse("fleet.gw1.twin.d1", headers, data, now_ms=NOW)
    assert caught.value.reason == reason
