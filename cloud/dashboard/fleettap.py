"""`FleetTap`: FLEET messages → spans, pickable items and the reading flow.

Each message is parsed by `cloud.ingest.facts.parse`, the one place a FLEET message is
understood, so the dashboard never disagrees with ingest about what one means; a message
ingest would refuse is skipped here (ingest counts it). Readings, reflex decisions and
command acks become spans (`cloud.dashboard.spans`); gateway events feed the flow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cloud.dashboard.flow import Flow
from cloud.dashboard.spans import Ids, Path, Span, derived_id, transport_spans
from cloud.dashboard.traces import Pick, PickKind, TraceStore
from cloud.errors import Rejected
from cloud.ingest.facts import HLC_HEADER, Fact, parse
from shared import hlc, trace
from shared.messages import CommandAck, Decision, GatewayEvent, Reading

MAX_COMMANDS: Final = 5000  # commands waiting for their ack


@dataclass(frozen=True, slots=True)
class Issued:
    """A command as its ack will need it: when, in which trace, from which span."""

    issued_ms: float
    trace_id: str
    span_id: str
    label: str


class Commands:
    """Commands by `cmd_id`, most recent `MAX_COMMANDS` (a reflex's or a plan step's)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Issued] = OrderedDict()

    def put(self, cmd_id: str, issued: Issued) -> None:
        self._items[cmd_id] = issued
        self._items.move_to_end(cmd_id)
        while len(self._items) > MAX_COMMANDS:
            self._items.popitem(last=False)

    def get(self, cmd_id: str) -> Issued | None:
        return self._items.get(cmd_id)


class FleetTap:
    def __init__(self, store: TraceStore, flow: Flow, commands: Commands) -> None:
        self._store = store
        self._flow = flow
        self._commands = commands

    def on_message(
        self,
        subject: str,
        headers: dict[str, str] | None,
        data: bytes,
        *,
        hub_ms: float | None,
        seen_ms: float,
    ) -> list[Span]:
        """The spans this message adds (already in the store)."""
        try:
            fact = parse(subject, headers, data, now_ms=int(seen_ms))
        except Rejected:
            return []
        body = fact.body
        if isinstance(body, GatewayEvent):
            self._flow.on_event(fact.gw, body)
            return []
        if not isinstance(body, Reading | Decision | CommandAck):
            return []
        ids = Ids.of(body.traceparent)
        if ids is None:
            return []
        headers = headers or {}
        edge_ms = hlc.unpack(fact.hlc)[0] if HLC_HEADER in headers else None
        path = Path(ids, Ids.of(headers.get(trace.HEADER)), edge_ms, hub_ms, seen_ms)
        spans = self._spans(fact, body, path)
        self._store.add(spans)
        return spans

    def _spans(self, fact: Fact, body: Reading | Decision | CommandAck, path: Path) -> list[Span]:
        where = f"{fact.gw}/{fact.device}"
        if isinstance(body, Reading):
            self._flow.readings += 1
            metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(body.metrics.items()))
            self._pick("reading", path, f"{where} #{body.seq}: {metrics}")
            return transport_spans(path, "reading", origin_ms=body.ts_ms)
        if isinstance(body, Decision):
            return self._decision(where, body, path)
        return self._ack(where, body, path)

    def _decision(self, where: str, decision: Decision, path: Path) -> list[Span]:
        command = decision.command
        if command is None:
            return []
        self._flow.reflex += 1
        ids = path.message
        label = f"{where} {command.action} {_params(command.params)} by {decision.name}"
        start = decision.ts_ms - decision.latency_us / 1000
        reflex = Span(ids.trace_id, ids.span_id, None, f"reflex {decision.name} → {command.action}",
                      "edge", start, decision.ts_ms,
                      {"source": decision.source, "latency_us": decision.latency_us,
                       "device": decision.device, "cmd_id": command.cmd_id})  # fmt: skip
        self._commands.put(
            command.cmd_id, Issued(command.issued_ms, ids.trace_id, ids.span_id, command.action)
        )
        self._pick("command", path, label)
        return [reflex, *transport_spans(path, "decision")]

    def _ack(self, where: str, ack: CommandAck, path: Path) -> list[Span]:
        issued = self._commands.get(ack.cmd_id)
        if issued is None:
            return []  # a command this replica never saw issued: nothing to time it from
        outcome = "ok" if ack.ok else f"refused: {ack.reason or 'no reason'}"
        span = Span(issued.trace_id, derived_id(issued.span_id, "device"), issued.span_id,
                    f"device {where} {issued.label}: {outcome}", "sensor",
                    issued.issued_ms, ack.ts_ms, {"ok": ack.ok, "cmd_id": ack.cmd_id})  # fmt: skip
        # The ack's traceparent is a child of the command's: the same trace.
        return [span, *transport_spans(path, "ack")]

    def _pick(self, kind: PickKind, path: Path, label: str) -> None:
        self._store.pick(Pick(kind, path.message.trace_id, label, path.hub_ms or path.seen_ms))


def _params(params: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in params.items()) + "}"
