"""uvicorn, run in-process as one more asyncio task of the orchestrator.

We bind the socket ourselves, so port 0 works and the URL is known before serving,
and we keep uvicorn's signal handling out: the orchestrator (or `baton cloud run`)
owns SIGTERM and drains everything in order, the API being one part of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """Serve `app` on host:port (0 = any free port) until `aclose()`."""

    def __init__(
        self, app: FastAPI, host: str, port: int, *, graceful_shutdown_s: float = 5.0
    ) -> None:
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self._sock.set_inheritable(True)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(max(1, graceful_shutdown_s)),
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        bound_host, bound_port = self._sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="cloud-api")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("API server exited during start-up")
            await asyncio.sleep(0.01)  # uvicorn exposes no start event, only this flag
        log.info("API listening on %s", self.url)

    async def aclose(self) -> None:
        """Stop accepting, let open requests finish (bounded), close. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            await task
        self._sock.close()
