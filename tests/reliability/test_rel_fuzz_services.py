"""Issue 10 item 10, the counted side: hypothesis-generated bad input fed to the running
services, each refusal moving its counter and nothing stopping the loop.

    edge ingest     an `EdgeDaemon` on its in-memory seams: each reading is either counted
                    ok or quarantined under one reason, never a handler error
    downlink        the real `Downlink` on a hub + leaf: each DOWNLINK message is applied
                    or refused (counted and reported to the hub), never a handler error
    cloud ingest    a real orchestrator on a hub: each FLEET message ends applied, a
                    duplicate, an event, or rejected by reason; the consumer drains, the
                    replica never fails

Hypothesis runs in a worker thread; every example's I/O runs on the test's loop
(`LoopBridge`), where the servers' clients live.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import nats
from hypothesis import HealthCheck, given, settings
from nats.js import JetStreamContext
from relkit_figures import Figures
from relkit_fuzz import (
    EDGE_REASONS,
    FACT_REASONS,
    MODEL_BYTES,
    MODEL_OBJECT,
    LoopBridge,
    downlink_messages,
    fleet_messages,
    publishable,
    reading_messages,
)

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.ingest.memory import MemorySink, MemorySource, MemoryUplink
from edge.uplink import Downlink, DownlinkConfig
from shared import codec, streams, subjects
from shared.compat import timeout
from shared.hlc import pack
from shared.messages import (
    Command,
    DesiredState,
    GatewayEvent,
    ModelUpdate,
    Reading,
    RulesUpdate,
    now_ms,
)
from shared.natsrun import LocalTopology, NatsServer
from shared.natsrun.monitor import poll_until

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
GW = "gw1"
WAIT_S = 30.0


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=SLOW_OK, database=None
    )


# -- edge ingest ------------------------------------------------------------------------


def _moved(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def test_edge_ingest_counts_every_bad_reading_by_reason_and_goes_on(
    tmp_path: Path, figures: Figures
) -> None:
    examples = figures.scale(ci=150, full=3000, name="examples")
    config = EdgeConfig.model_validate(
        {
            "state_dir": tmp_path / "edge",
            "http": {"enabled": False},
            "uplink": {"enabled": False},
            "downlink": {"enabled": False},
            "store": {"flush_interval_ms": 20},
        }
    )
    source = MemorySource()
    outcomes: Counter[str] = Counter()
    async with EdgeDaemon(
        config, source=source, sink=MemorySink(), uplink=MemoryUplink()
    ) as daemon:
        bridge = LoopBridge(asyncio.get_running_loop())

        async def inject(topic: str, data: bytes) -> tuple[int, dict[str, int], dict[str, int]]:
            before = daemon.stats()
            await source.inject(topic, data)  # returns once the pipeline handled it
            after = daemon.stats()
            return (
                after.readings_ok - before.readings_ok,
                _moved(before.quarantined, after.quarantined),
                _moved(before.errors, after.errors),
            )

        @_settings(examples)
        @given(message=reading_messages())
        def one(message: tuple[str, bytes]) -> None:
            ok, quarantined, errors = bridge.run(inject(*message))
            assert not errors, f"{errors} on {message!r}"
            if ok:
                assert (ok, quarantined) == (1, {}), message
                outcomes["accepted"] += 1
                return
            [(reason, count)] = quarantined.items()
            assert count == 1 and reason in EDGE_REASONS, (quarantined, message)
            outcomes[reason] += 1

        await asyncio.to_thread(one)
        # Still serving: a good reading right after all of that is processed.
        good = Reading(device="pump1", seq=1, ts_ms=now_ms(), metrics={"temp_c": 20.0})
        ok_before = daemon.stats().readings_ok
        await source.inject("baton.d.pump1.r", codec.encode(good))
        assert daemon.stats().readings_ok == ok_before + 1 and daemon.ready
    _record(figures, outcomes)


def _record(figures: Figures, outcomes: Counter[str]) -> None:
    rejected = {k: v for k, v in outcomes.items() if k not in ("accepted", "applied")}
    figures.record(
        inputs=sum(outcomes.values()),
        accepted=outcomes["accepted"] + outcomes["applied"],
        rejected=sum(rejected.values()),
        crashes=0,
        **{f"rejected_{k}": n for k, n in sorted(rejected.items())},
    )


# -- downlink -----------------------------------------------------------------------------


class Outcomes:
    """The downlink's two ends for one message: a handler call, or a refusal report."""

    def __init__(self) -> None:
        self.applied = 0
        self.refused = 0
        self._changed = asyncio.Event()

    def _tick(self) -> None:
        self._changed.set()

    @property
    def total(self) -> int:
        return self.applied + self.refused

    async def wait_total(self, count: int) -> None:
        async with timeout(WAIT_S):
            while self.total < count:
                self._changed.clear()
                await self._changed.wait()

    # DownlinkHandler
    async def on_command(self, cmd: Command) -> None:
        self.applied += 1
        self._tick()

    async def on_desired(self, desired: DesiredState) -> None:
        self.applied += 1
        self._tick()

    async def on_rules(self, update: RulesUpdate) -> None:
        self.applied += 1
        self._tick()

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        self.applied += 1
        self._tick()

    # EventSink: refusals (and applied rule/model updates, which the handler counted)
    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None:
        if codec.decode(payload, GatewayEvent).data.get("refused"):
            self.refused += 1
            self._tick()


async def test_downlink_applies_or_refuses_and_counts_every_message(
    topology: LocalTopology, figures: Figures
) -> None:
    examples = figures.scale(ci=100, full=3000, name="examples")
    hub = await nats.connect(topology.hub.client_url)
    leaf = await nats.connect(topology.leaf.client_url)
    ends = Outcomes()
    downlink = Downlink(
        leaf,
        GW,
        DownlinkConfig(retry_backoff_max_s=0.3, model_fetch_timeout_s=10.0),
        ends,
        events=ends,
    )
    try:
        hjs = hub.jetstream()
        await streams.ensure_hub(hjs)
        models = await hjs.object_store(subjects.MODELS_STORE)
        await models.put(MODEL_OBJECT, MODEL_BYTES)
        await downlink.start()
        bridge = LoopBridge(asyncio.get_running_loop())
        ids = itertools.count()
        sent = 0

        async def publish(subject: str, data: bytes) -> None:
            nonlocal sent
            await hjs.publish(subject, data, headers={"Nats-Msg-Id": f"fuzz-{next(ids)}"})
            sent += 1
            await ends.wait_total(sent)

        @_settings(examples)
        @given(message=downlink_messages(GW))
        def one(message: tuple[str, bytes]) -> None:
            subject, data = message
            # Only what reaches this gateway's consumer (downlink.gw1.>) can be handled.
            if publishable(subject) and subject.startswith(f"downlink.{GW}."):
                bridge.run(publish(subject, data))

        await asyncio.to_thread(one)
        # A last good command: once it is handled, the counters of all before are final.
        last = Command(device="pump1", action="fan", deadline_ms=now_ms() + 60_000)
        await publish(subjects.downlink(GW, "cmd", "pump1"), codec.encode(last))
        stats = downlink.stats()
        assert stats.handler_errors == 0 and stats.received == sent
        assert stats.refused == ends.refused and ends.applied + ends.refused == sent
        figures.record(
            inputs=sent, accepted=ends.applied, rejected=ends.refused, crashes=0, handler_errors=0
        )
    finally:
        await downlink.aclose()
        await leaf.close()
        await hub.close()


# -- cloud ingest -------------------------------------------------------------------------


def _samples(orch: Orchestrator, name: str, label: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for metric in orch.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                found[sample.labels.get(label, "")] += int(sample.value)
    return found


async def _drained(
    js: JetStreamContext, durable: str, *, unless: Callable[[], bool] = lambda: False
) -> None:
    """Until the shared ingest consumer has nothing pending or unacked (or `unless()`)."""

    async def done() -> bool:
        if unless():
            return True
        info = await js.consumer_info(subjects.FLEET_STREAM, durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await poll_until(done, timeout_s=WAIT_S)


async def test_cloud_ingest_accounts_for_every_fleet_message_and_never_fails(
    hub: NatsServer, tmp_path: Path, figures: Figures
) -> None:
    examples = figures.scale(ci=150, full=3000, name="examples")
    config = CloudConfig.model_validate(
        {
            "nats_url": hub.client_url,
            "replica": "a",
            "state_dir": tmp_path / "cloud",
            "http": {"port": 0},
            "ingest": {"workers": 1, "batch": 64},
            "planner": {"enabled": False},
            "reconcile_interval_s": 0.2,
        }
    )
    orch = Orchestrator(config)
    await orch.start()
    nc = await nats.connect(hub.client_url)
    try:
        js = nc.jetstream()
        bridge = LoopBridge(asyncio.get_running_loop())
        ids = itertools.count()
        sent = 0

        async def publish(subject: str, data: bytes, hlc: str | None, sender: str | None) -> None:
            nonlocal sent
            headers = {"Nats-Msg-Id": f"fuzz-{next(ids)}"}
            headers.update({k: v for k, v in (("Baton-Hlc", hlc), ("Baton-Gateway", sender)) if v})
            await js.publish(subject, data, headers=headers)
            sent += 1

        @_settings(examples)
        @given(message=fleet_messages())
        def one(message: tuple[str, bytes]) -> None:
            subject, data = message
            if publishable(subject) and subject.startswith("fleet."):
                hlc = str(pack(now_ms() - 1000, 0)) if len(data) % 3 else None
                sender = subject.split(".")[1] if len(data) % 5 else "gw2"
                bridge.run(publish(subject, data, hlc, sender))

        await asyncio.to_thread(one)
        await _drained(js, config.ingest.durable, unless=lambda: orch.failed is not None)
        rejected = _samples(orch, "baton_cloud_ingest_rejected_total", "reason")
        ingested = _samples(orch, "baton_cloud_ingest_messages_total", "outcome")
        loop_errors = sum(_samples(orch, "baton_cloud_loop_errors_total", "loop").values())
        assert set(rejected) <= FACT_REASONS, rejected
        assert sum(rejected.values()) + sum(ingested.values()) == sent, (rejected, ingested)
        assert orch.failed is None and loop_errors == 0
        figures.record(
            inputs=sent,
            accepted=sum(ingested.values()),
            rejected=sum(rejected.values()),
            crashes=0,
            loop_errors=loop_errors,
            **{f"ingested_{k}": n for k, n in sorted(ingested.items())},
            **{f"rejected_{k}": n for k, n in sorted(rejected.items())},
        )
    finally:
        await nc.close()
        await orch.aclose()


# Found by atheris: see test_rel_fuzz_decoders.DEEP. 404 bytes from any gateway (or any
# device, through its gateway's forwarder) on FLEET.
DEEP = b"\x91" * 400 + b"\xc4\x02\xd6\xff"


async def test_a_deeply_nested_fleet_message_is_rejected_and_the_replica_goes_on(
    hub: NatsServer, tmp_path: Path, figures: Figures
) -> None:
    config = CloudConfig.model_validate(
        {
            "nats_url": hub.client_url,
            "replica": "a",
            "state_dir": tmp_path / "cloud",
            "http": {"port": 0},
            "ingest": {"workers": 1},
            "planner": {"enabled": False},
        }
    )
    orch = Orchestrator(config)
    await orch.start()
    nc = await nats.connect(hub.client_url)
    try:
        js = nc.jetstream()
        await js.publish(subjects.fleet(GW, "r", "pump1"), DEEP, headers={"Nats-Msg-Id": "deep"})
        good = Reading(device="pump1", seq=1, ts_ms=now_ms(), metrics={"temp_c": 20.0})
        await js.publish(
            subjects.fleet(GW, "r", "pump1"), codec.encode(good), headers={"Nats-Msg-Id": "good"}
        )
        await _drained(js, config.ingest.durable, unless=lambda: orch.failed is not None)
        rejected = _samples(orch, "baton_cloud_ingest_rejected_total", "reason")
        figures.record(replica_failed=orch.failed is not None, rejected=sum(rejected.values()))
        assert orch.failed is None and rejected == {"malformed": 1}
    finally:
        await nc.close()
        await orch.aclose()


async def test_a_deeply_nested_reading_is_quarantined_at_the_edge(
    tmp_path: Path, figures: Figures
) -> None:
    config = EdgeConfig.model_validate(
        {
            "state_dir": tmp_path / "edge",
            "http": {"enabled": False},
            "uplink": {"enabled": False},
            "downlink": {"enabled": False},
        }
    )
    source = MemorySource()
    async with EdgeDaemon(config, source=source, sink=MemorySink(), uplink=MemoryUplink()) as d:
        try:
            await source.inject("baton.d.pump1.r", DEEP)
        finally:
            figures.record(quarantined=d.stats().quarantined_total)
        assert d.stats().quarantined == {"malformed": 1}


async def test_a_deeply_nested_reading_does_not_stop_the_uplink(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    hub = await nats.connect(topology.hub.client_url)
    leaf = await nats.connect(topology.leaf.client_url)
    config = EdgeConfig.model_validate(
        {
            "state_dir": tmp_path / "edge",
            "nats_url": topology.leaf.client_url,
            "http": {"port": 0},
            "uplink": {"enabled": True},
            "downlink": {"enabled": False},
        }
    )
    try:
        hjs = hub.jetstream()
        await streams.ensure_hub(hjs)
        async with EdgeDaemon(config) as daemon:
            await leaf.publish("baton.d.pump1.r", DEEP)
            good = Reading(device="pump1", seq=1, ts_ms=now_ms(), metrics={"temp_c": 20.0})
            await leaf.publish("baton.d.pump1.r", codec.encode(good))

            async def settled() -> bool:
                fleet = await hjs.stream_info(subjects.FLEET_STREAM)
                uplink = daemon.stats().uplink
                return fleet.state.messages > 0 or (uplink is not None and uplink.errors >= 3)

            await poll_until(settled, timeout_s=WAIT_S)
            uplink = daemon.stats().uplink
            figures.record(forwarded=uplink.forwarded, uplink_errors=uplink.errors)
            assert uplink.forwarded >= 1, uplink
    finally:
        await leaf.close()
        await hub.close()
