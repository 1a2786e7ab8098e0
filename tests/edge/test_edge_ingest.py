"""Ingest → reflex → actuate on in-memory seams: bad payloads never stop the loop.

What a user notices: every malformed reading is counted by its reason and kept in the
quarantine table with its topic and bytes, and the very next good reading still gets
its command; a hot reading gets exactly one command and one decision on record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.store import EdgeStore
from shared.codec import decode, encode, encode_json
from shared.messages import Command, Decision, Reading, now_ms

Start = Callable[..., Awaitable[tuple[EdgeDaemon, Any]]]
ConfigFactory = Callable[..., EdgeConfig]
TOPIC = "baton.d.pump1.r"


def reading(device: str, seq: int, **metrics: float) -> Reading:
    return Reading(device=device, seq=seq, ts_ms=now_ms() + seq, metrics=metrics)


def packed(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "v": 1, "kind": "reading", "device": "pump1", "seq": 1, "ts_ms": now_ms(),
        "metrics": {"temp_c": 20.0},
    }  # fmt: skip
    base.update(fields)
    return msgpack.packb(base)  # type: ignore[no-any-return]


BAD: dict[str, tuple[bytes, str]] = {
    "truncated msgpack": (encode(reading("pump1", 1, temp_c=20.0))[:-5], "malformed"),
    "garbage": (b"\xc1\xc1\xc1", "malformed"),
    "broken json": (b'{"v": 1, "kind": "reading", ', "malformed"),
    "string number": (packed(metrics={"temp_c": "41.2"}), "invalid"),
    "bool number": (packed(metrics={"temp_c": True}), "invalid"),
    "missing seq": (packed(seq=None), "invalid"),
    "nan": (packed(metrics={"temp_c": math.nan}), "non_finite"),
    "infinity": (packed(metrics={"temp_c": math.inf}), "non_finite"),
    "bad device id": (packed(device="pump 1/#"), "invalid"),
    "other device": (packed(device="pump2"), "device_mismatch"),
    "schema version": (packed(v=99), "schema_version"),
    "unknown kind": (packed(kind="bogus"), "unknown_kind"),
    "not a map": (msgpack.packb([1, 2, 3]), "invalid"),
    "oversize": (packed(pad="x" * 300_000), "too_large"),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_payload_is_counted_quarantined_and_the_next_one_processed(
    memory_daemon: Start, case: str
) -> None:
    payload, reason = BAD[case]
    daemon, parts = await memory_daemon()
    await parts.source.inject(TOPIC, payload)
    for seq in (2, 3):  # two hot readings: the default rule debounces over 2
        await parts.source.inject(TOPIC, encode(reading("pump1", seq, temp_c=80.0)))
    await daemon.flush()

    stats = daemon.stats()
    assert stats.quarantined == {reason: 1}
    assert stats.readings_ok == 2
    assert decode(parts.sink.sent[0].payload, Command).action == "fan"
    rows = await daemon.store.call(EdgeStore.quarantine)
    assert [(r["topic"], r["reason"]) for r in rows] == [(TOPIC, reason)]
    assert rows[0]["payload"] == payload[: 16 * 1024] and rows[0]["size"] == len(payload)


async def test_json_readings_are_accepted(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    for seq in (1, 2):
        await parts.source.inject(TOPIC, encode_json(reading("pump1", seq, temp_c=90.0)))
    assert daemon.stats().readings_ok == 2 and len(parts.sink.sent) == 1


async def test_a_hot_pump_gets_one_command_and_one_decision(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    for seq, temp in enumerate([60.0, 75.0, 76.0, 77.0, 78.0]):
        await parts.source.inject(TOPIC, encode(reading("pump1", seq, temp_c=temp)))
    await daemon.flush()

    [sent] = parts.sink.sent
    cmd = decode(sent.payload, Command)
    assert (sent.device, cmd.device, cmd.action, cmd.params, cmd.gw) == (
        "pump1", "pump1", "fan", {"on": True}, "gw1",
    )  # fmt: skip
    assert cmd.deadline_ms - cmd.issued_ms == 2000 and cmd.source == "rule:overheat@1"
    [row] = await daemon.store.call(EdgeStore.decisions)
    assert (row["name"], row["source"], row["cmd_id"], row["reading_seq"]) == (
        "overheat", "rule", cmd.cmd_id, 2,
    )  # fmt: skip
    assert json.loads(row["inputs"]) == {"temp_c": 76.0} and row["latency_us"] > 0
    [dec] = parts.uplink.of_kind("dec")
    decision = decode(dec.payload, Decision)
    assert dec.key == decision.decision_id == row["decision_id"]
    assert decision.command is not None and decision.command.cmd_id == cmd.cmd_id
    # The reading's trace continues in the command and the decision.
    assert cmd.traceparent.split("-")[1] == decision.traceparent.split("-")[1]
    [action] = await daemon.store.call(EdgeStore.actions)
    assert (action["cmd_id"], action["status"], action["origin"]) == (cmd.cmd_id, "sent", "rule")
    # Readings themselves are the leaf stream's job with source = "nats".
    assert parts.uplink.of_kind("r") == []


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
async def test_a_reflex_command_is_the_bytes_its_model_encodes_to(
    memory_daemon: Start, edge_config: ConfigFactory, fmt: str
) -> None:
    # The reflex packs a command from its fields without a model: a device must get
    # exactly what `encode(Command)` gives, field for field and in order.
    cfg = edge_config(http={"enabled": False}, actuate={"format": fmt})
    daemon, parts = await memory_daemon(cfg)
    for seq in (1, 2):
        await parts.source.inject(TOPIC, encode(reading("pump1", seq, temp_c=90.0)))
    await daemon.flush()

    [sent] = parts.sink.sent
    [dec] = parts.uplink.of_kind("dec")
    cmd = decode(dec.payload, Decision).command
    assert cmd is not None and decode(sent.payload, Command) == cmd
    assert sent.payload == (encode_json(cmd) if fmt == "json" else encode(cmd))


async def test_mqtt_source_forwards_stamped_readings(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    _, parts = await memory_daemon(edge_config(http={"enabled": False}, ingest={"source": "mqtt"}))
    await parts.source.inject("baton/d/pump1/r", encode(reading("pump1", 41, temp_c=20.0)))
    await parts.source.inject("baton/d/pump1/r", b"junk")
    [sub] = parts.uplink.of_kind("r")
    forwarded = decode(sub.payload, Reading)
    assert (sub.device, sub.key, forwarded.seq, forwarded.gw) == ("pump1", 41, 41, "gw1")
    assert forwarded.hlc is not None and forwarded.hlc >> 16 >= now_ms() - 60_000


async def test_rollups_per_device_metric_and_minute(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    for seq, temp in enumerate([10.0, 20.0, 30.0]):
        await parts.source.inject(TOPIC, encode(reading("pump1", seq, temp_c=temp, rpm=5.0)))
    await daemon.flush()
    await parts.source.inject(TOPIC, encode(reading("pump1", 9, temp_c=40.0)))
    await daemon.flush()  # a second batch merges into the same minute's row

    rows = await daemon.store.call(EdgeStore.rollups, "pump1")
    by_metric = {r["metric"]: r for r in rows}
    if len(rows) > 2:  # the minute turned between the two batches
        pytest.skip("a minute boundary fell inside the test")
    t = by_metric["temp_c"]
    assert (t["min"], t["max"], t["mean"], t["count"]) == (10.0, 40.0, 25.0, 4)
    assert by_metric["rpm"]["count"] == 3
