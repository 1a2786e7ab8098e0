"""Desired state → device commands → acks → reported state, on an in-memory daemon.

What a user notices: a desired version is reported applied only after the device took
every command of it; a version the gateway or the device refuses, or that the device
never answers, is reported as refused (the old version stays applied, the cloud does not
see a false convergence); a newer version supersedes one still in flight, and an older
one arriving late is never sent after it, not even after a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edge.daemon import EdgeDaemon
from edge.store import EdgeStore
from edge.twin import keeper
from shared.codec import decode, encode
from shared.compat import timeout
from shared.messages import Command, CommandAck, DesiredState, GatewayEvent, ReportedState

Start = Callable[..., Awaitable[tuple[EdgeDaemon, Any]]]
WAIT_S = 10.0


def desired(version: int, **state: Any) -> DesiredState:
    return DesiredState(device="pump1", gw="gw1", version=version, state=state)


async def answer(parts: Any, *, ok: bool = True, reason: str | None = None) -> list[Command]:
    """The device acks every command it got since the last call."""
    commands = [decode(s.payload, Command) for s in parts.sink.sent[parts.answered :]]
    parts.answered = len(parts.sink.sent)
    for cmd in commands:
        ack = CommandAck(cmd_id=cmd.cmd_id, device=cmd.device, ok=ok, reason=reason)
        await parts.source.inject(f"baton.d.{cmd.device}.ack", encode(ack))
    return commands


def reports(parts: Any) -> list[ReportedState]:
    return [decode(s.payload, ReportedState) for s in parts.uplink.of_kind("twin")]


def refusals(parts: Any) -> list[GatewayEvent]:
    return [decode(s.payload, GatewayEvent) for s in parts.uplink.of_kind("ev")]


@pytest.fixture
async def twin(memory_daemon: Start) -> tuple[EdgeDaemon, Any]:
    daemon, parts = await memory_daemon()
    parts.answered = 0
    await daemon.on_desired(desired(1, **{"set_load.load": 0.8}))
    await answer(parts)
    assert [r.applied_version for r in reports(parts)] == [1]
    return daemon, parts


async def test_a_version_the_device_refuses_is_reported_as_refused(
    twin: tuple[EdgeDaemon, Any],
) -> None:
    daemon, parts = twin
    await daemon.on_desired(desired(2, **{"set_setpoint.setpoint": 10.0, "fan.on": True}))
    await answer(parts, ok=False, reason="setpoint 10 °C is below the ambient 25 °C")

    last = reports(parts)[-1]
    assert (last.applied_version, last.state, last.refused_version) == (
        1, {"set_load.load": 0.8}, 2,
    )  # fmt: skip
    assert last.reason is not None and "below the ambient" in last.reason
    [event] = refusals(parts)
    assert (event.type, event.device, event.data["version"]) == ("twin_refused", "pump1", 2)
    stored = (await daemon.store.call(EdgeStore.twins))["pump1"]
    assert (stored.desired_version, stored.applied_version) == (2, 1)


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ({"load": 0.5}, "not <action>.<param>"),
        ({"set_load.load": 7.0}, "out_of_bounds"),
        ({"warp.drive": True}, "not_allowed"),
        ({"gw.ticket.ref": "x"}, "gateway action"),
    ],
)
async def test_a_version_the_gateway_refuses_sends_nothing(
    twin: tuple[EdgeDaemon, Any], state: dict[str, Any], why: str
) -> None:
    daemon, parts = twin
    await daemon.on_desired(desired(2, **state))
    assert len(parts.sink.sent) == 1  # only version 1's command
    last = reports(parts)[-1]
    assert (last.applied_version, last.refused_version) == (1, 2)
    assert why in (last.reason or "")


async def test_a_version_the_device_never_answers_is_refused_at_its_deadline(
    twin: tuple[EdgeDaemon, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, parts = twin
    monkeypatch.setattr(keeper, "TWIN_DEADLINE_MS", 50)
    monkeypatch.setattr(keeper, "ACK_GRACE_MS", 10)
    await daemon.on_desired(desired(2, **{"fan.on": True}))
    async with timeout(WAIT_S):
        while (item := await parts.uplink.next()).kind != "ev":
            pass
    assert "did not acknowledge" in str(decode(item.payload, GatewayEvent).data["reason"])
    await answer(parts)  # too late: the version was refused, the late ack changes nothing
    assert [(r.applied_version, r.refused_version) for r in reports(parts)] == [(1, None), (1, 2)]


async def test_a_newer_version_supersedes_one_in_flight(twin: tuple[EdgeDaemon, Any]) -> None:
    daemon, parts = twin
    await daemon.on_desired(desired(2, **{"fan.on": True}))
    stale = decode(parts.sink.sent[-1].payload, Command)
    parts.answered = len(parts.sink.sent)
    await daemon.on_desired(desired(3, **{"fan.on": False}))
    # The device's late answer to version 2 is not version 3's.
    ack = CommandAck(cmd_id=stale.cmd_id, device="pump1", ok=False, reason="late")
    await parts.source.inject("baton.d.pump1.ack", encode(ack))
    await answer(parts)
    assert [(r.applied_version, r.refused_version) for r in reports(parts)] == [
        (1, None),
        (3, None),
    ]
    assert reports(parts)[-1].state == {"fan.on": False}


async def test_bad_and_spoofed_acks_are_quarantined(twin: tuple[EdgeDaemon, Any]) -> None:
    daemon, parts = twin
    await daemon.on_desired(desired(2, **{"fan.on": True}))
    cmd = decode(parts.sink.sent[-1].payload, Command)
    spoof = CommandAck(cmd_id=cmd.cmd_id, device="pump1", ok=True)
    await parts.source.inject("baton.d.pump2.ack", encode(spoof))  # pump2 posing as pump1
    await parts.source.inject("baton.d.pump1.ack", b"\x93garbage")
    assert [r.applied_version for r in reports(parts)] == [1]
    assert daemon.stats().quarantined == {"device_mismatch": 1, "malformed": 1}
    await answer(parts)  # the real answer still counts
    assert [r.applied_version for r in reports(parts)] == [1, 2]


async def test_a_late_older_version_never_follows_a_newer_one_even_after_a_restart(
    twin: tuple[EdgeDaemon, Any], memory_daemon: Start
) -> None:
    daemon, parts = twin
    await daemon.on_desired(desired(2, **{"fan.on": True}))
    await daemon.on_desired(desired(3, **{"fan.on": False}))  # in flight, never answered
    await daemon.aclose()

    again, parts = await memory_daemon()  # the in-flight version is gone with the process
    parts.answered = 0
    await again.on_desired(desired(2, **{"fan.on": True}))  # a late DOWNLINK redelivery
    assert parts.sink.sent == []
    await again.on_desired(desired(3, **{"fan.on": False}))  # the cloud re-sends the newest
    [cmd] = await answer(parts)
    assert cmd.params == {"on": False}
    assert [(r.applied_version, r.state) for r in reports(parts)] == [(3, {"fan.on": False})]
