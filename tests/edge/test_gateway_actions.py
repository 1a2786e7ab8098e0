"""The gateway's own actions (`gw.ticket`, `gw.ticket_cancel`, `gw.diagnose`), on an
in-memory daemon.

What a user notices: a plan's ticket lands in the gateway's database and is acknowledged
with its ref, never reaching a device; asking twice opens one ticket; cancelling works
(twice too, and for a ticket never opened); a diagnosis reports what the gateway's own
store knows about the device; a command past its deadline is refused, not carried out;
a rule can open a ticket too, and no device is asked to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.errors import GuardRefused
from edge.store import EdgeStore
from shared.codec import decode, encode
from shared.compat import timeout
from shared.messages import Command, CommandAck, Reading, now_ms

Start = Callable[..., Awaitable[tuple[EdgeDaemon, Any]]]
ConfigFactory = Callable[..., EdgeConfig]
WAIT_S = 10.0


def gw_command(action: str, **params: Any) -> Command:
    return Command(
        device="pump1", gw="gw1", action=action, params=params, deadline_ms=now_ms() + 5000
    )


def acks(parts: Any) -> list[CommandAck]:
    return [decode(s.payload, CommandAck) for s in parts.uplink.of_kind("ack")]


async def test_a_ticket_is_opened_once_and_acknowledged_with_its_ref(
    memory_daemon: Start,
) -> None:
    daemon, parts = await memory_daemon()
    ticket = gw_command("gw.ticket", kind="maintenance", ref="t-1", reason="bearing wear")
    await daemon.on_command(ticket)
    await daemon.on_command(ticket)  # a downlink redelivery: the same answer, one ticket
    await daemon.on_command(gw_command("gw.ticket", kind="check", ref="t-1"))  # same ref

    first, again, third = acks(parts)
    assert first == again and first.cmd_id == ticket.cmd_id and first.ok
    assert first.result is not None
    assert (first.result["ticket"], first.result["status"]) == ("t-1", "open")
    assert third.ok and third.result is not None and third.result["kind"] == "maintenance"
    assert parts.sink.sent == []  # nothing for the device
    [row] = await daemon.store.call(EdgeStore.tickets, "pump1")
    assert (row["ref"], row["kind"], row["reason"], row["status"]) == (
        "t-1", "maintenance", "bearing wear", "open",
    )  # fmt: skip


async def test_cancelling_is_idempotent(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    await daemon.on_command(gw_command("gw.ticket", kind="check", ref="t-2"))
    await daemon.on_command(gw_command("gw.ticket_cancel", ref="t-2"))
    await daemon.on_command(gw_command("gw.ticket_cancel", ref="t-2"))
    await daemon.on_command(gw_command("gw.ticket_cancel", ref="never-opened"))
    results = [a.result for a in acks(parts)]
    assert all(a.ok for a in acks(parts))
    assert [r["status"] for r in results if r is not None] == [
        "open", "cancelled", "cancelled", "not_found",
    ]  # fmt: skip


async def test_a_diagnosis_reports_what_the_gateway_knows(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    for seq, temp in enumerate([60.0, 75.0, 76.0]):  # the default overheat rule fires
        reading = Reading(device="pump1", seq=seq, ts_ms=now_ms(), metrics={"temp_c": temp})
        await parts.source.inject("baton.d.pump1.r", encode(reading))
    await daemon.on_command(gw_command("gw.diagnose"))

    [ack] = acks(parts)
    assert ack.ok
    result: Any = ack.result
    assert (result["device"], result["verdict"]) == ("pump1", "alerting")
    temp = result["latest"]["temp_c"]
    assert (temp["min"], temp["max"], temp["count"]) == (60.0, 76.0, 3)
    assert [d["name"] for d in result["decisions"]] == ["overheat"]
    assert result["twin"] is None and result["open_tickets"] == []


async def test_bad_params_and_late_commands_are_refused(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    await daemon.on_command(gw_command("gw.ticket", kind="maintenance"))  # no ref
    late = gw_command("gw.ticket", kind="check", ref="t-3").model_copy(
        update={"deadline_ms": now_ms() - 1}
    )
    with pytest.raises(GuardRefused, match="expired"):
        await daemon.on_command(late)
    missing, expired = acks(parts)
    assert not missing.ok and "needs ref" in (missing.reason or "")
    assert (expired.ok, expired.reason) == (False, "guard:expired")
    assert await daemon.store.call(EdgeStore.tickets) == []


async def test_a_rule_can_open_a_ticket_off_the_hot_path(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    rule = {
        "name": "vibration-high", "metric": "vib_rms", "above": 6.0, "cooldown_s": 0,
        "action": "gw.ticket", "params": {"kind": "maintenance", "ref": "vib-1"},
    }  # fmt: skip
    daemon, parts = await memory_daemon(edge_config(http={"enabled": False}, rules=[rule]))
    reading = Reading(device="pump1", seq=1, ts_ms=now_ms(), metrics={"vib_rms": 7.5})
    await parts.source.inject("baton.d.pump1.r", encode(reading))
    async with timeout(WAIT_S):
        while (item := await parts.uplink.next()).kind != "ack":
            pass

    ack = decode(item.payload, CommandAck)
    assert ack.ok and ack.result is not None and ack.result["ticket"] == "vib-1"
    assert parts.sink.sent == []  # no device was asked to open a ticket
    assert [t["ref"] for t in await daemon.store.call(EdgeStore.tickets, "pump1")] == ["vib-1"]
    assert daemon.stats().decisions == 1
