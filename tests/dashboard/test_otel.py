"""Spans go out through OpenTelemetry with baton's own trace and span ids, and only when
an OTLP endpoint is configured."""

from __future__ import annotations

import pytest

from cloud.dashboard import otel
from cloud.dashboard.spans import Span

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_nothing_is_exported_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in otel.ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)
    assert otel.exporter("r1") is None


def test_an_endpoint_makes_an_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    sink = otel.exporter("r1")
    assert isinstance(sink, otel.OtelSink)
    sink.shutdown()  # nothing batched: no connection attempt


def test_spans_keep_their_ids_parents_and_times() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    sink = otel.OtelSink(memory, "r1")
    sensor = Span(TRACE, "00f067aa0ba902b7", None, "reading sensor → edge", "edge",
                  1_700_000_000_000.0, 1_700_000_000_004.5)  # fmt: skip
    cloud = Span(TRACE, "b7ad6b7169203331", sensor.span_id, "reading hub → cloud", "cloud",
                 1_700_000_000_006.0, 1_700_000_000_009.0, {"device": "pump-0"})  # fmt: skip
    sink.export([sensor, cloud])
    sink.shutdown()

    exported = {s.name: s for s in memory.get_finished_spans()}
    root, child = exported[sensor.name], exported[cloud.name]
    assert f"{root.context.trace_id:032x}" == f"{child.context.trace_id:032x}" == TRACE
    assert f"{root.context.span_id:016x}" == sensor.span_id and root.parent is None
    assert f"{child.context.span_id:016x}" == cloud.span_id
    assert child.parent is not None and f"{child.parent.span_id:016x}" == sensor.span_id
    assert (child.start_time, child.end_time) == (
        1_700_000_000_006_000_000,
        1_700_000_000_009_000_000,
    )
    assert child.attributes == {"baton.where": "cloud", "device": "pump-0"}
    assert root.resource.attributes["service.name"] == "baton-cloud"
