"""`/metrics` (Prometheus text) and `/healthz` (JSON) on a small asyncio HTTP/1.0 server.

A gateway needs two read-only GETs, not a web framework: asyncio streams serve them on
the daemon's own loop, so a scrape never needs a thread or a lock. `/healthz` answers 200
when the health document says `"ok": true` (ready, connected to its broker), 503
otherwise, with the details in the body either way (what systemd, Kubernetes and uptime
checkers expect).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from edge.ops.metrics import CONTENT_TYPE
from shared.compat import timeout

log = logging.getLogger(__name__)

# A scraper on the LAN sends its request at once; a client that dawdles is cut off.
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8 * 1024

Health = Callable[[], dict[str, Any]]
Metrics = Callable[[], bytes]


class OpsServer:
    """`await start()` listens (connections are accepted from then on), then run
    `serve()` as a task; cancelling it closes the listening socket."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Health) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._health = health
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        # Accepting from here on, not from the first turn of `serve()`: the daemon says
        # "ready" (and READY=1 to systemd) right after this, and a probe may come at once.
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=MAX_REQUEST_BYTES, start_serving=True
        )
        if self._server.sockets:
            self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (the one the kernel chose when configured with 0)."""
        return self._port

    async def serve(self) -> None:
        """Serve until cancelled; the listening socket is closed on the way out."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop listening (also when `serve()` never ran). Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = self._route(head)
            writer.write(_response(status, ctype, body))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that cannot send a request gets no answer
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _route(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] != b"GET":
            return 405, "text/plain", b"only GET\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return 200, CONTENT_TYPE, self._metrics()
        if path == b"/healthz":
            health = self._health()
            status = 200 if health.get("ok") else 503
            return status, "application/json", json.dumps(health).encode()
        return 404, "text/plain", b"not found: try /metrics or /healthz\n"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _response(status: int, ctype: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
