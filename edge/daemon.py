"""`EdgeDaemon`: the gateway program, wiring ingest → reflex → actuate, state, uplink, ops.

    async with EdgeDaemon(load_edge_config("edge.toml"), config_path="edge.toml") as d:
        await d.wait()          # returns only if a background task fails

Start order: SQLite state, the leaf connection, the uplink, the reflex engine, the
writer and HTTP tasks, the downlink, ingest, so nothing arrives before the daemon can
act on it, and last the session handoff (`edge.handoff.attach`), which attaches in the
background once the hub's leases bucket answers: readiness never waits for the hub.
`aclose()` drains in reverse: close the handoff (its sessions drain first), stop
ingest, close the downlink, flush the audit writer, `await uplink.flush()`, close the
uplink, the connection, the store. The writer and HTTP server run as named tasks in one
`TaskGroup`; the sources, the uplink, the downlink and the handoff own theirs.

The daemon is also the downlink's `DownlinkHandler` (`on_command`, `on_desired`,
`on_rules`, `on_model`). A command whose action is the gateway's own (`gw.*`, see
`shared.actions`) is carried out here (`edge.actuate.GatewayActions`) and never reaches
a device; every other one goes through the guard to the device.

The ingest source delivers the devices' command acks too (`baton.d.<dev>.ack`): they
settle the twin's desired versions in flight, and with an MQTT source (a broker the leaf
does not capture) they are forwarded to the hub like readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from edge.actuate import ActuationGuard, Actuator, GatewayActions, GuardPolicy
from edge.config import EdgeConfig
from edge.errors import DeviceMismatch, RuleError
from edge.handoff.attach import HandoffAttachment
from edge.ingest import links
from edge.ingest.pipeline import Pipeline
from edge.ingest.ports import CommandSink, ReadingSource, UplinkHandle
from edge.ops import EdgeCollector, EdgeMetrics, Gauges, OpsServer
from edge.ops.heap import release_free_heap
from edge.ops.process import process_uptime_s
from edge.reflex.control import ReflexControl, ScorerLoader
from edge.reflex.engine import ReflexEngine
from edge.reflex.model import load_scorer
from edge.store import AsyncStore, AuditWriter, EdgeStore, QuarantineEntry
from edge.twin import TwinKeeper
from shared import actions, codec, subjects
from shared.compat import TaskGroup
from shared.errors import DecodeError
from shared.hlc import HybridLogicalClock
from shared.lifecycle import Service
from shared.messages import Command, CommandAck, DesiredState, ModelUpdate, RulesUpdate, now_ms

log = logging.getLogger(__name__)

# The last level of a device's ack topic, in its NATS and its MQTT spelling.
_ACK_TOPICS = (".ack", "/ack")


@dataclass(frozen=True, slots=True)
class DaemonStats:
    """A snapshot of what the daemon did; cheap to take (no I/O)."""

    ready: bool
    readings_ok: int
    quarantined: Mapping[str, int]
    decisions: int
    commands_sent: int
    commands_refused: int
    refused: Mapping[str, int]
    errors: Mapping[str, int]
    latency_p50_us: int | None
    latency_p99_us: int | None
    audit_pending: int
    audit_dropped: int
    rules: int
    rules_version: str
    uplink: Any = None
    """`edge.uplink.UplinkStats` when the uplink runs."""
    handoff: str = "off"
    """Whether the daemon hosts agent sessions: "attached", "waiting for hub" or "off"."""
    sessions: int = 0
    """Agent sessions it runs now."""

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


class EdgeDaemon(Service):
    """One gateway's daemon; an async context manager, `aclose()` safe twice.

    `source`, `sink` and `uplink` replace the ones the config would build (tests, embedding);
    `scorer_loader` replaces `edge.models.OnnxScorer.load`.
    """

    def __init__(
        self,
        config: EdgeConfig,
        *,
        config_path: Path | str | None = None,
        source: ReadingSource | None = None,
        sink: CommandSink | None = None,
        uplink: UplinkHandle | None = None,
        scorer_loader: ScorerLoader = load_scorer,
    ) -> None:
        self.config = config
        self.gateway = config.gateway
        self.metrics = EdgeMetrics()
        self.clock = HybridLogicalClock()
        self.collector = EdgeCollector(self.metrics, self._gauges)
        path = Path(config_path) if config_path is not None else None
        self._control = ReflexControl(config, config_path=path, loader=scorer_loader)
        self._source = source
        self._sink = sink
        self._uplink = uplink
        self._owns_uplink = uplink is None
        self._nc: Client | None = None
        self._store: AsyncStore | None = None
        self._writer: AuditWriter | None = None
        self._actuator: Actuator | None = None
        self._gateway_actions: GatewayActions | None = None
        self._twin: TwinKeeper | None = None
        self._pipeline: Pipeline | None = None
        self._http: OpsServer | None = None
        self._handoff: HandoffAttachment | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._started_s = 0.0
        self._ready = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything, ingest last; on any failure, close what was started."""
        self._started_s = time.monotonic()
        try:
            await self._open_state()
            await self._open_links()
            await self._build()
            await self._start_background()
            await self._start_downlink()
            await self._start_ingest()
            self._start_handoff()
        except BaseException:
            await self.aclose()
            raise
        self._ready = True
        self._log_ready()

    async def _open_state(self) -> None:
        cfg = self.config
        store = await AsyncStore.open(
            cfg.state_dir,
            max_quarantine=cfg.store.quarantine_max_rows,
            max_decisions=cfg.store.decisions_max_rows,
        )
        self._stack.push_async_callback(store.aclose)
        self._store = store
        self._writer = AuditWriter(store, cfg.store.flush_interval_ms / 1000)

    async def _open_links(self) -> None:
        cfg = self.config
        if links.needs_nats(cfg, self._source, self._sink, self._uplink):
            self._nc = await links.nats_client(cfg.nats_url, self.gateway)
            self._stack.push_async_callback(links.close_nats, self._nc)
        if self._source is None:
            self._source = links.reading_source(cfg, self._nc)
        if self._sink is None:
            self._sink = links.command_sink(self._source, self._nc)
        if self._uplink is None and cfg.uplink.enabled:
            assert self._nc is not None
            self._uplink = links.uplink(self._nc, cfg, self.clock)
        if self._uplink is not None and self._owns_uplink:
            await self._uplink.start()
            self._stack.push_async_callback(self._close_uplink, self._uplink)

    async def _close_uplink(self, uplink: UplinkHandle) -> None:
        try:
            await uplink.flush()
        finally:
            await uplink.aclose()

    async def _build(self) -> None:
        assert self._store is not None and self._writer is not None and self._sink is not None
        cfg = self.config
        # Loading an ONNX model (~100-300 ms of CPU) runs on the loop on purpose: nothing
        # is ingesting yet, and a worker thread would keep its own malloc arena (~1 MB of
        # the 90 MB budget) for the process's life.
        engine = self._control.start()
        epochs = await self._store.call(EdgeStore.fencing)
        twins = await self._store.call(EdgeStore.twins)
        guard = ActuationGuard(GuardPolicy.build(cfg.actuate, engine.actions), epochs)
        self._actuator = Actuator(
            self.gateway, self._sink, guard, self._writer, self.metrics,
            uplink=self._uplink, fmt=cfg.actuate.format,
        )  # fmt: skip
        self._gateway_actions = GatewayActions(
            self.gateway, self._store, self._writer, self._actuator, uplink=self._uplink
        )
        self._actuator.local = self._gateway_actions.submit
        self._twin = TwinKeeper(
            self.gateway, self._store, self._actuator, self.clock,
            uplink=self._uplink, twins=twins,
        )  # fmt: skip
        self._stack.push_async_callback(self._twin.aclose)
        self._pipeline = Pipeline(
            gateway=self.gateway, engine=engine, actuator=self._actuator, writer=self._writer,
            metrics=self.metrics, clock=self.clock, uplink=self._uplink,
            forward_readings=cfg.ingest.source == "mqtt",
            max_payload_bytes=cfg.ingest.max_payload_bytes,
        )  # fmt: skip
        self._writer.add_feeder(self._pipeline.settle)

    async def _start_background(self) -> None:
        http = self.config.http
        if http.enabled:
            self._http = OpsServer(http.host, http.port, self.collector.exposition, self.health)
            await self._http.start()
        self._runner = asyncio.create_task(self._supervise(), name="edge-daemon")
        self._stack.push_async_callback(self._stop_background)

    async def _supervise(self) -> None:
        assert self._writer is not None and self._gateway_actions is not None
        async with TaskGroup() as tg:
            tg.create_task(self._writer.run(), name="edge-audit-writer")
            tg.create_task(self._gateway_actions.serve(), name="edge-gateway-actions")
            if self._http is not None:
                tg.create_task(self._http.serve(), name="edge-http")

    async def _stop_background(self) -> None:
        if self._gateway_actions is not None:
            await self._gateway_actions.drain()  # ingest has stopped: nothing new comes
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._http is not None:
            await self._http.aclose()  # also when its task was cancelled before it ran
        if self._writer is not None:
            await self._writer.flush()

    async def _start_downlink(self) -> None:
        if not self.config.downlink.enabled:
            return
        assert self._nc is not None
        downlink = links.downlink(self._nc, self.config, self, events=self._uplink)
        await downlink.start()
        self._stack.push_async_callback(downlink.aclose)

    async def _start_ingest(self) -> None:
        assert self._source is not None and self._pipeline is not None
        await self._source.start(self._deliver)
        self._stack.push_async_callback(self._stop_ingest)

    async def _stop_ingest(self) -> None:
        assert self._source is not None and self._pipeline is not None
        await self._source.stop()
        self._pipeline.settle()  # the last commands' decisions, before the writer flushes

    def _start_handoff(self) -> None:
        """Host agent sessions once the hub answers (`[handoff]`; off without a leaf)."""
        assert self._actuator is not None and self._writer is not None
        uplink = self._uplink if self.config.uplink.enabled else None

        def hub_reachable() -> bool | None:  # `UplinkStats.hub_connected`: a memory read
            return getattr(uplink.stats(), "hub_connected", None) if uplink else None

        self._handoff = HandoffAttachment(
            self, nc=self._nc, guard=self._actuator.guard, fence=self._writer.fence,
            uplink=hub_reachable if uplink is not None else None,
            on_attached=release_free_heap,  # what attaching freed (edge.ops.heap)
        )  # fmt: skip
        self._stack.push_async_callback(self._handoff.aclose)
        self._handoff.start()

    async def _deliver(self, topic: str, data: bytes, received_ns: int) -> None:
        """`Deliver` of the ingest source: acks to the twin, readings to the hot path."""
        if topic.endswith(_ACK_TOPICS):
            await self._on_device_ack(topic, data)
            return
        assert self._pipeline is not None
        await self._pipeline.handle(topic, data, received_ns)

    async def _on_device_ack(self, topic: str, data: bytes) -> None:
        try:
            ack = _decode_ack(topic, data)
        except DecodeError as exc:
            # Counted and kept like a bad reading; the hub refuses the same bytes itself.
            assert self._writer is not None
            self.metrics.quarantined[exc.reason] += 1
            self._writer.quarantine(QuarantineEntry(topic, data, exc.reason, exc.detail, now_ms()))
            log.warning("ack on %s refused: %s", topic, exc, extra={"reason": exc.reason})
            return
        # The leaf captures `baton.d.*.ack` in its UPLINK stream; any other broker does not.
        if self.config.ingest.source == "mqtt" and self._uplink is not None:
            self._uplink.submit("ack", ack.device, ack.cmd_id, data, traceparent=ack.traceparent)
        assert self._twin is not None
        try:
            await self._twin.on_ack(ack)
        except Exception:  # the next ack and reading must still be handled
            self.metrics.errors["handler"] += 1
            log.exception("ack %s not accounted", ack.cmd_id)

    def _log_ready(self) -> None:
        took = time.monotonic() - self._started_s
        uptime = process_uptime_s()
        log.info(
            "edge daemon %s ready: start took %.3f s, %.3f s since the process started",
            self.gateway,
            took,
            uptime if uptime is not None else took,
            extra={
                "gateway": self.gateway,
                "start_s": round(took, 4),
                "ready_s": round(uptime, 4) if uptime is not None else None,
                "rules": len(self.engine.rules),
                "models": [m.name for m in self.engine.models],
                "source": self.config.ingest.source,
                "http_port": self.http_port,
            },
        )

    async def aclose(self) -> None:
        """Drain and close everything, in reverse start order. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        await self._stack.aclose()
        log.info("edge daemon %s stopped", self.gateway, extra=self._summary())

    async def wait(self) -> None:
        """Return when the background tasks end; raise what made them fail."""
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def flush(self) -> None:
        """Commit the audit trail and await the uplink's pending acks (tests, drain)."""
        if self._writer is not None:
            await self._writer.flush()
        if self._uplink is not None:
            await self._uplink.flush()

    # -- control: SIGHUP and the downlink's DownlinkHandler ------------------------------

    async def reload_rules(self) -> bool:
        """SIGHUP: take the config file's rules; a bad file is refused and logged."""
        try:
            rules = await self._control.reload_from_file()
        except RuleError as exc:
            self.metrics.reloads["refused"] += 1
            log.error("rules not reloaded, the old ones stay: %s", exc, extra={"reason": str(exc)})
            return False
        self._rules_changed()
        log.info("rules reloaded from the config file: %d rules", len(rules))
        return True

    async def on_rules(self, update: RulesUpdate) -> None:
        try:
            rules = await self._control.apply_rules(update)
        except RuleError:
            self.metrics.reloads["refused"] += 1
            raise
        self._rules_changed()
        log.info("rules %s from the hub in force: %d rules", update.version, len(rules))

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        await self._control.apply_model(update, data)
        self._rules_changed()
        log.info("model %s %s from the hub in force", update.name, update.version)

    async def on_command(self, cmd: Command) -> None:
        """A refusal raises `GuardRefused`: the downlink acks and reports it, no redelivery."""
        await self.execute(cmd, "downlink")

    async def on_desired(self, desired: DesiredState) -> None:
        assert self._twin is not None
        await self._twin.apply(desired)

    async def execute(self, cmd: Command, origin: str = "session") -> None:
        """Carry out a command from outside the rules: a `gw.*` one on the gateway, any
        other through the guard to its device. `GuardRefused` if the guard refuses it.

        The refusal is already recorded, counted and acked up as failed when it raises.
        """
        assert self._actuator is not None and self._gateway_actions is not None
        if actions.is_gateway(cmd.action):
            await self._gateway_actions.run(cmd, origin)
            return
        await self._actuator.execute(cmd, origin)

    def _rules_changed(self) -> None:
        self.metrics.reloads["ok"] += 1
        if self._actuator is not None:
            self._actuator.guard.policy = GuardPolicy.build(
                self.config.actuate, self.engine.actions
            )

    # -- what callers read -------------------------------------------------------------

    @property
    def engine(self) -> ReflexEngine:
        return self._control.engine

    @property
    def store(self) -> AsyncStore:
        if self._store is None:
            raise RuntimeError("the daemon is not started")
        return self._store

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    @property
    def handoff(self) -> HandoffAttachment | None:
        """The session handoff: its `state`, its `EdgeHandoff` once `attached` is set."""
        return self._handoff

    def stats(self) -> DaemonStats:
        m = self.metrics
        writer = self._writer
        return DaemonStats(
            ready=self._ready,
            readings_ok=m.readings["ok"],
            quarantined=dict(m.quarantined),
            decisions=m.decisions,
            commands_sent=sum(n for (_, r), n in m.commands.items() if r == "sent"),
            commands_refused=sum(n for (_, r), n in m.commands.items() if r == "refused"),
            refused=dict(m.refused),
            errors=dict(m.errors),
            latency_p50_us=m.latency.quantile_us(0.5),
            latency_p99_us=m.latency.quantile_us(0.99),
            audit_pending=writer.pending if writer else 0,
            audit_dropped=writer.dropped if writer else 0,
            rules=len(self.engine.rules),
            rules_version=self.engine.rules.version,
            uplink=self._uplink.stats() if self._uplink is not None else None,
            handoff=self._handoff.state if self._handoff is not None else "off",
            sessions=self._handoff.sessions if self._handoff is not None else 0,
        )

    def health(self) -> dict[str, Any]:
        """The `/healthz` document."""
        nats_ok = self._nc.is_connected if self._nc is not None else None
        ingest_ok = self._source.connected if self._source is not None else False
        up = self._uplink.stats() if self._uplink is not None else None
        return {
            "ok": self._ready and ingest_ok and nats_ok is not False,
            "ready": self._ready,
            "gateway": self.gateway,
            "nats_connected": nats_ok,
            "ingest_connected": ingest_ok,
            "uplink": links.uplink_health(up),
            "rules": len(self.engine.rules),
            "rules_version": self.engine.rules.version,
            "models": [m.name for m in self.engine.models],
            "handoff": self._handoff.state if self._handoff is not None else "off",
            "sessions": self._handoff.sessions if self._handoff is not None else 0,
        }

    def _gauges(self) -> Gauges:
        hosting = self._hosting()
        up = links.uplink_health(self._uplink.stats() if self._uplink is not None else None)
        return Gauges(
            backlog=up["backlog_msgs"] if up else None,
            hub_connected=up["hub_connected"] if up else None,
            nats_connected=bool(self._nc is not None and self._nc.is_connected),
            ready=self._ready,
            rules=len(self.engine.rules),
            audit_pending=self._writer.pending if self._writer else 0,
            sessions_hosted=hosting,
            sessions=self._handoff.sessions if self._handoff and hosting is not None else None,
        )

    def _hosting(self) -> bool | None:
        """1 attached, 0 waiting for the hub, absent when handoff is off."""
        state = self._handoff.state if self._handoff is not None else "off"
        return None if state == "off" else state == "attached"

    def _summary(self) -> dict[str, Any]:
        s = self.stats()
        return {
            "readings": s.readings_ok,
            "quarantined": s.quarantined_total,
            "decisions": s.decisions,
            "commands_sent": s.commands_sent,
        }


def _decode_ack(topic: str, data: bytes) -> CommandAck:
    ack = codec.decode(data, CommandAck)
    # A device publishes only as itself: the topic is what the broker authenticated.
    if ack.device != subjects.device_from_subject(topic):
        raise DeviceMismatch(f"payload says {ack.device!r}, topic {topic!r}")
    return ack
