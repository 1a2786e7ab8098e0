"""Export the spans the dashboard assembles through OpenTelemetry (OTLP), when configured.

Configured the standard way, by environment: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (plus the exporter's own `OTEL_EXPORTER_OTLP_*`
settings). Without either, nothing is imported and `exporter()` returns None. The SDK
and the OTLP/HTTP exporter come with the `otel` extra (`pip install 'baton[otel]'`)
and are imported only here, only then.

Each span keeps baton's ids: the SDK's id generator is handed the span id (and, for a
span with no parent, the trace id) we already have, so a span exported here and one a
gateway exports itself meet in the same trace, parent to child.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable
from typing import Any, Final, Protocol

from cloud.dashboard.spans import Span

log = logging.getLogger(__name__)

ENDPOINT_VARS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SERVICE_NAME: Final = "baton-cloud"


class SpanSink(Protocol):
    def export(self, spans: Iterable[Span]) -> None: ...

    def shutdown(self) -> None: ...


def configured() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARS)


def exporter(replica: str) -> SpanSink | None:
    """An OTLP span sink when an endpoint is configured and the SDK is installed."""
    if not configured():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning(
            "an OTLP endpoint is configured but the OpenTelemetry SDK is not installed; "
            "spans are not exported (pip install 'baton[otel]')"
        )
        return None
    return OtelSink(OTLPSpanExporter(), replica)


class _PresetIds:
    """An SDK `IdGenerator` that hands out the ids set just before `start_span`."""

    def __init__(self) -> None:
        self.span_id: int | None = None
        self.trace_id: int | None = None

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, None
        return value if value is not None else random.getrandbits(64)

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, None
        return value if value is not None else random.getrandbits(128)

    def is_trace_id_random(self) -> bool:
        # W3C trace-context level 2's "random" flag: our ids come from the devices, which
        # promise nothing about how they were made.
        return False


class OtelSink:
    """Spans → an SDK tracer with a batch processor around `span_exporter`."""

    def __init__(self, span_exporter: Any, replica: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self._ids = _PresetIds()
        resource = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": replica})
        self._provider = TracerProvider(resource=resource, id_generator=self._ids)  # type: ignore[arg-type]
        self._provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self._tracer = self._provider.get_tracer("baton.dashboard")

    def export(self, spans: Iterable[Span]) -> None:
        from opentelemetry import trace as otel

        for span in spans:
            context = None
            if span.parent_id is not None:
                parent = otel.SpanContext(
                    trace_id=int(span.trace_id, 16),
                    span_id=int(span.parent_id, 16),
                    is_remote=True,
                    trace_flags=otel.TraceFlags(otel.TraceFlags.SAMPLED),
                )
                context = otel.set_span_in_context(otel.NonRecordingSpan(parent))
            else:
                self._ids.trace_id = int(span.trace_id, 16)
            self._ids.span_id = int(span.span_id, 16)
            started = self._tracer.start_span(
                span.name,
                context=context,
                start_time=_ns(span.start_ms),
                attributes={"baton.where": span.where, **span.attrs},
            )
            started.end(end_time=_ns(max(span.end_ms, span.start_ms)))

    def shutdown(self) -> None:
        """Flush what is batched and stop the exporter (bounded by the SDK's timeouts)."""
        self._provider.shutdown()


def _ns(epoch_ms: float) -> int:
    # Through whole microseconds: epoch ms x 1e6 as a float would round off the ns.
    return round(epoch_ms * 1000) * 1000
