"""Reading the running components over HTTP: the cloud's API, the edge's metrics.

The demo depends only on the standard library for this (urllib in a worker thread):
httpx is a test dependency, and a few requests a second need nothing more.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from shared.errors import TransportError

REQUEST_TIMEOUT_S: Final = 5.0


async def get_json(url: str) -> Any:
    """GET `url` and parse its JSON body; `TransportError` when it cannot be had."""
    body = await asyncio.to_thread(_get, url)
    return json.loads(body)


async def get_text(url: str) -> str:
    return (await asyncio.to_thread(_get, url)).decode("utf-8", "replace")


async def put_json(url: str, body: Any) -> Any:
    """PUT `body` as JSON; the parsed answer. `TransportError` on any failure."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return json.loads(await asyncio.to_thread(_get, request))


def _get(request: str | urllib.request.Request) -> bytes:
    url = request if isinstance(request, str) else request.full_url
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TransportError(
            f"{'GET' if isinstance(request, str) else 'PUT'} {url}: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class EdgeCounts:
    """The edge daemon's counters, from its Prometheus `/metrics`."""

    readings_ok: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    commands_sent: dict[str, int] = field(default_factory=dict)  # by origin
    commands_refused: int = 0
    decisions: int = 0
    backlog: int = 0


async def edge_counts(metrics_url: str) -> EdgeCounts:
    return parse_edge_metrics(await get_text(metrics_url))


def parse_edge_metrics(text: str) -> EdgeCounts:
    readings: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    refused = decisions = backlog = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, int(sample.value)
            if sample.name == "baton_edge_readings_total":
                readings[labels.get("result", "")] += value
            elif sample.name == "baton_edge_quarantine_total":
                quarantined[labels.get("reason", "")] += value
            elif sample.name == "baton_edge_commands_total":
                if labels.get("result") == "sent":
                    sent[labels.get("origin", "")] += value
                else:
                    refused += value
            elif sample.name == "baton_edge_decisions_total":
                decisions = value
            elif sample.name == "baton_edge_uplink_backlog":
                backlog = value
    return EdgeCounts(
        readings_ok=readings["ok"],
        quarantined=dict(quarantined),
        commands_sent=dict(sent),
        commands_refused=refused,
        decisions=decisions,
        backlog=backlog,
    )
