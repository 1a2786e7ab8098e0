"""`/healthz` and `/metrics`: listening from "ready" on, and Prometheus text a scraper reads.

What a user notices: a probe that connects the moment the daemon logs "ready" (or
systemd gets READY=1) is answered, not refused; and every counter the daemon keeps is
read by a Prometheus parser under its documented name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.ops.metrics import EdgeCollector, EdgeMetrics, Gauges
from shared.compat import timeout

Start = Callable[..., Awaitable[tuple[EdgeDaemon, Any]]]
ConfigFactory = Callable[..., EdgeConfig]
WAIT_S = 10.0


async def test_health_answers_a_probe_made_the_moment_the_daemon_is_ready(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    d, _ = await memory_daemon(edge_config())
    assert d.ready and d.http_port
    # Connect before the loop runs anything else: the kernel completes the handshake
    # only if the port already listens.
    sock = socket.create_connection(("127.0.0.1", d.http_port), timeout=WAIT_S)
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        await writer.drain()
        async with timeout(WAIT_S):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert raw.startswith(b"HTTP/1.0 200 ")
    assert b'"ready": true' in raw


def test_metrics_text_is_read_by_a_prometheus_parser() -> None:
    m = EdgeMetrics()
    m.readings["ok"] += 2_500_000
    m.quarantined['odd "reason"\\'] += 1
    m.commands[("rule", "sent")] += 3
    m.latency.observe_us(120)
    m.latency.observe_us(300_000)
    m.decisions = 3
    gauges = Gauges(
        backlog=None, hub_connected=False, nats_connected=True, ready=True, rules=2,
        audit_pending=7,
    )  # fmt: skip
    text = EdgeCollector(m, lambda: gauges).exposition().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("baton_edge_readings_total", (("result", "ok"),))] == 2_500_000
    assert samples[("baton_edge_quarantine_total", (("reason", 'odd "reason"\\'),))] == 1
    key = ("baton_edge_commands_total", (("origin", "rule"), ("result", "sent")))
    assert samples[key] == 3
    assert samples[("baton_edge_decisions_total", ())] == 3
    assert samples[("baton_edge_reflex_latency_seconds_bucket", (("le", "0.00025"),))] == 1
    assert samples[("baton_edge_reflex_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("baton_edge_reflex_latency_seconds_count", ())] == 2
    assert samples[("baton_edge_reflex_latency_seconds_sum", ())] == 0.30012
    assert samples[("baton_edge_hub_connected", ())] == 0
    assert samples[("baton_edge_audit_pending", ())] == 7
    assert not any(name == "baton_edge_uplink_backlog" for name, _ in samples)
    assert 'baton_edge_readings_total{result="ok"} 2.5e+06\n' in text
