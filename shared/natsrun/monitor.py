"""A minimal client for the nats-server monitoring endpoints (`/healthz`, `/varz`, `/leafz`).

The monitoring port speaks plain HTTP/1.x on loopback; a dozen lines of asyncio streams
keep the harness free of an HTTP client dependency on a gateway.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from shared.compat import timeout
from shared.errors import HarnessError

log = logging.getLogger(__name__)

# One request on loopback; anything slower means the server is not (yet) serving.
REQUEST_TIMEOUT_S = 2.0


class MonitorUnavailable(HarnessError):
    """The endpoint did not answer with 200; the server may still be starting."""

    retryable = True


async def get_json(monitor_url: str, path: str) -> dict[str, Any]:
    """GET `path` (with its query) from the monitoring server at `monitor_url`."""
    parts = urlsplit(monitor_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 8222
    try:
        async with timeout(REQUEST_TIMEOUT_S):
            status, body = await _get(host, port, path)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        raise MonitorUnavailable(f"{monitor_url}{path}: {exc!r}") from exc
    if status != 200:
        raise MonitorUnavailable(f"{monitor_url}{path}: HTTP {status} {body[:200]!r}")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise MonitorUnavailable(f"{monitor_url}{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise MonitorUnavailable(f"{monitor_url}{path}: not a JSON object")
    return doc


async def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        # HTTP/1.0: the server closes after the response, so reading to EOF is the body.
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise MonitorUnavailable(f"http://{host}:{port}{path}: bad response {raw[:100]!r}")
    return int(status_line[1]), body


# Poll fast at first (a server is usually ready in tens of milliseconds), then back off.
POLL_FIRST_S = 0.01
POLL_MAX_S = 0.2


async def poll_until(check: Callable[[], Awaitable[bool]], *, timeout_s: float) -> None:
    """Await `check()` until it returns True; `asyncio.TimeoutError` after `timeout_s`.

    Only for state a server exposes by polling (its monitoring endpoints); the deadline
    is the `asyncio.timeout`, the pause between probes only spares the CPU.
    """
    delay = POLL_FIRST_S
    async with timeout(timeout_s):
        while not await check():
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
