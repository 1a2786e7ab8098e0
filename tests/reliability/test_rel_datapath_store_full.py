"""Item 4: the leaf store fills up while the hub is unreachable — the documented full-disk
policy, exactly (shared/streams.py `uplink_stream`, edge/uplink/README.md):

    drop_oldest  every MQTT reading is stored; the oldest unforwarded ones are deleted to
                 make room, each one counted in `dropped_full`; the hub gets the newest
                 (plus what the forwarder already held). hub + dropped_full = sent.
    refuse_new   the backlog is kept and new writes are refused: the daemon's `submit()`
                 sees it (`submit_failed`); MQTT sensors do not (nats-server PUBACKs before
                 JetStream stores), their readings are lost at the leaf. What the leaf
                 stored reaches the hub, all of it and nothing else; nothing is dropped.

Both: the store never holds more than `max_bytes`; once the hub is back and the backlog
drained, new readings flow again (space returned); the daemon's SQLite file passes
`PRAGMA integrity_check` afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from datapath_kit import (
    GW,
    HubView,
    LeafView,
    MqttLoad,
    eventually,
    linked_pair,
    sqlite_integrity,
    verdict,
)

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("f0", "f1", "f2", "f3")
TINY = 8192  # bytes of leaf store: a few dozen readings
BATCH = 8


def edge_config(leaf_url: str, state: Path, when_full: str) -> EdgeConfig:
    # One rule that fires on every reading: each reading makes a decision the daemon
    # submit()s to the same store, so the daemon's own writes meet the full store too.
    rule = {"name": "every", "metric": "t", "above": -1e9, "cooldown_s": 0.0, "action": "fan"}
    return EdgeConfig(
        gateway=GW,
        nats_url=leaf_url,
        state_dir=state,
        http={"enabled": False},
        rules=[rule],
        uplink={
            "enabled": True,
            "hub_ack_timeout_s": 1.0,
            "retry_backoff_max_s": 0.3,
            "max_bytes": TINY,
            "when_full": when_full,
            "batch": BATCH,
        },
        downlink={"enabled": False},
        store={"flush_interval_ms": 20},
    )


@pytest.mark.parametrize("when_full", ["drop_oldest", "refuse_new"])
async def test_full_leaf_store_follows_the_documented_policy_and_recovers(
    tmp_path: Path,
    no_nats_left: None,
    figures: Figures,
    when_full: Literal["drop_oldest", "refuse_new"],
) -> None:
    per_device = figures.scale(ci=50, full=500, name="readings_per_device_while_full")
    async with (
        linked_pair(tmp_path / "nats") as (topo, relay),
        HubView.open(topo.hub.client_url) as hub,
        LeafView.open(topo.leaf.client_url) as leaf,
        EdgeDaemon(edge_config(topo.leaf.client_url, tmp_path / "edge", when_full)) as daemon,
        MqttLoad(topo.leaf.mqtt_url or "", DEVICES, window=16) as load,
    ):
        await relay.cut("refuse")  # the hub is unreachable from here on
        for _ in range(per_device):
            for device in DEVICES:
                load.publish_one(device)
            await load.changed.wait_for(lambda: load.in_flight <= 8)
        await load.settle()  # every reading PUBACKed, under both policies
        sent = load.sent_total
        await eventually(
            lambda: daemon.stats().readings_ok >= sent, "the daemon ingested every reading"
        )
        await daemon.flush()  # its decisions stored or refused
        full_msgs, full_bytes = await leaf.backlog()
        held = await leaf.stored_ids()
        up = daemon.stats().uplink
        # What the leaf took: every reading under drop_oldest (the documented promise the
        # accounting below checks), what it holds under refuse_new (nothing left it).
        readings_taken = sent if when_full == "drop_oldest" else sum("/r/" in i for i in held)
        stored_ever = readings_taken + up.submitted - up.submit_failed

        async def accounted() -> bool:
            # Every message the leaf took is at the hub or counted as dropped.
            dropped = daemon.stats().uplink.dropped_full
            return await hub.count("r") + await hub.count("dec") + dropped >= stored_ever

        await relay.heal()
        await eventually(leaf.wait_empty, "the backlog forwarded")
        await eventually(accounted, "every stored message at the hub or counted")
        up = daemon.stats().uplink
        at_hub = await hub.per_device()
        at_hub_ids = [*await hub.ids("r"), *await hub.ids("dec")]
        at_hub_total = len(at_hub_ids)

        # Space returned: new readings reach the hub again, every one. Round by round: a
        # burst bigger than the tiny store would be trimmed by the policy itself.
        before = dict(load.sent)
        for _ in range(10):
            for device in DEVICES:
                load.publish_one(device)
            await load.settle()
            await eventually(lambda: hub.per_device_has_last(load.sent), "new readings")
        after = await hub.per_device()
        recovered = sum(len([s for s in after.get(d, []) if s >= before[d]]) for d in DEVICES)
    integrity = sqlite_integrity(tmp_path / "edge" / "edge.db")

    readings = verdict({d: list(range(per_device)) for d in DEVICES}, at_hub)
    figures.record(
        when_full=when_full,
        max_bytes=TINY,
        readings_sent=sent,
        readings_acknowledged_mqtt=sent,
        decisions_submitted=up.submitted,
        submit_failed=up.submit_failed,
        peak_store_bytes=full_bytes,
        held_when_full=full_msgs,
        at_hub=at_hub_total,
        dropped_full=up.dropped_full,
        lost_uncounted=stored_ever - at_hub_total - up.dropped_full,
        readings_lost_at_leaf_unreported=sent - readings_taken,
        duplicated=len(at_hub_ids) - len(set(at_hub_ids)),
        recovered=recovered,
        sqlite_integrity=integrity,
    )
    assert full_bytes <= TINY
    assert len(set(at_hub_ids)) == len(at_hub_ids) and readings.order_kept
    assert recovered == 10 * len(DEVICES)
    assert integrity == "ok"
    assert set(held) <= set(at_hub_ids), "something the full store held never reached the hub"
    # Exact accounting: each message the leaf took is at the hub once or counted dropped.
    assert at_hub_total + up.dropped_full == stored_ever
    if when_full == "drop_oldest":
        assert up.submit_failed == 0 and up.dropped_full > 0
    else:
        # It kept the oldest, refused the rest: the sensors were never told (PUBACK came
        # before the store), the daemon's own writes were refused and counted.
        assert up.dropped_full == 0 and up.submit_failed > 0
        assert set(at_hub_ids) == set(held)
        assert all(at_hub[d][0] == 0 and at_hub[d][-1] < per_device - 1 for d in DEVICES)
