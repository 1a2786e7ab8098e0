"""Helpers of the dashboard tests: FLEET messages as a gateway forwards them.

fleet_message(...)   (subject, headers, payload) of one forwarded message, with the
                     Baton-Hlc / Baton-Gateway / traceparent headers the forwarder adds
reading(...), decision_for(...), ack_for(...)   a reading, the reflex decision it
                     triggered (same trace), and the device's ack of its command
"""

from __future__ import annotations

from shared import codec, hlc, subjects, trace
from shared.messages import Command, CommandAck, Decision, Message, Reading

GW = "gw1"


def fleet_message(
    kind: str, device: str, message: Message, *, edge_ms: int, gw: str = GW
) -> tuple[str, dict[str, str], bytes]:
    headers = {
        "Baton-Hlc": str(hlc.pack(edge_ms, 0)),
        "Baton-Gateway": gw,
        trace.HEADER: trace.child_of(message.traceparent),
    }
    return subjects.fleet(gw, kind, device), headers, codec.encode(message)


def reading(device: str = "pump-0", seq: int = 1, *, ts_ms: int, temp: float = 71.5) -> Reading:
    return Reading(device=device, seq=seq, ts_ms=ts_ms, metrics={"temp_c": temp})


def decision_for(r: Reading, *, ts_ms: int, latency_us: int = 300) -> Decision:
    tp = trace.child_of(r.traceparent)
    command = Command(
        device=r.device, gw=GW, action="fan", params={"on": True},
        issued_ms=ts_ms, deadline_ms=ts_ms + 2000, traceparent=tp,
    )  # fmt: skip
    return Decision(
        gw=GW, device=r.device, source="rule", name="overheat", version="1",
        inputs={"temp_c": r.metrics["temp_c"]}, command=command, latency_us=latency_us,
        ts_ms=ts_ms, reading_seq=r.seq, traceparent=tp,
    )  # fmt: skip


def ack_for(d: Decision, *, ts_ms: int, ok: bool = True) -> CommandAck:
    assert d.command is not None
    return CommandAck(
        cmd_id=d.command.cmd_id, device=d.device, ok=ok, ts_ms=ts_ms,
        reason=None if ok else "unknown action", traceparent=trace.child_of(d.traceparent),
    )  # fmt: skip
