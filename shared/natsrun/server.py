"""One nats-server process run from a generated config: start, stop, kill, restart.

The config file and the server's log (`nats-server.conf`, `nats-server.log`) live in the
store dir next to JetStream's `jetstream/` folder, so one directory holds all there is to
know about a run. The server runs in its own session: a Ctrl-C in the terminal reaches
only our process, which then stops the servers in order (leaf before hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from shared.compat import timeout
from shared.errors import HarnessError, PortInUse, ServerStartError
from shared.lifecycle import Service
from shared.natsrun.binary import find_nats_server
from shared.natsrun.config import ServerConfig
from shared.natsrun.monitor import MonitorUnavailable, get_json, poll_until
from shared.natsrun.ports import HOST, check_free

log = logging.getLogger(__name__)

CONFIG_FILE = "nats-server.conf"
LOG_FILE = "nats-server.log"
# Starting takes tens of milliseconds; restoring a large JetStream store takes longer.
READY_TIMEOUT_S = 20.0
# SIGTERM makes nats-server flush JetStream and exit; give it a moment before SIGKILL.
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 20
_HEALTHZ = "/healthz?js-enabled-only=true"


class NatsServer(Service):
    """A nats-server process; an async context manager that starts it and closes it.

    >>> async with NatsServer(hub_config()) as hub:
    ...     nc = await nats.connect(hub.client_url)
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        binary: Path | str | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        self._config = config
        # Resolved at start, so BATON_NATS_SERVER set after construction still counts.
        self._binary = Path(binary) if binary is not None else None
        self._ready_timeout = ready_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._closed = False
        self._log_start = 0  # where this run's lines begin in the appended log

    def __repr__(self) -> str:
        return f"<NatsServer {self.name} pid={self.pid} client={self.client_url}>"

    # -- what clients need -------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def domain(self) -> str:
        """The JetStream domain, e.g. `hub` or `edge-gw1`."""
        return self._config.domain

    @property
    def client_url(self) -> str:
        return f"nats://{HOST}:{self._config.client_port}"

    @property
    def mqtt_url(self) -> str | None:
        port = self._config.mqtt_port
        return None if port is None else f"mqtt://{HOST}:{port}"

    @property
    def leafnode_url(self) -> str | None:
        """Where leaf nodes connect (hub only)."""
        port = self._config.leafnode_port
        return None if port is None else f"nats-leaf://{HOST}:{port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self._config.monitor_port}"

    @property
    def store_dir(self) -> Path:
        return self._config.store_dir

    @property
    def log_path(self) -> Path:
        return self._config.store_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        """The process id while the server runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the server and return once it serves clients with JetStream enabled
        and, for a gateway leaf (`config.gateway`), once the gateway's own streams exist.

        Raises `BinaryNotFound`, `PortInUse`, or `ServerStartError` with the log's tail.
        Starting again after `stop()` or `kill()` reuses the same ports and store.
        """
        if self._closed:
            raise HarnessError(f"nats-server {self.name} is closed; make a new NatsServer")
        if self.running:
            return
        binary = self._binary or find_nats_server()
        check_free(self._config.ports())
        conf = self._write_config()
        self._proc = await self._spawn(binary, conf)
        try:
            await self._wait_ready(self._proc)
            if self._config.gateway is not None:
                await _create_gateway_streams(self.client_url, self._config.gateway)
        except BaseException:
            await self.kill()
            raise
        log.info("nats-server %s ready", self.name, extra={"pid": self.pid, "url": self.client_url})

    async def stop(self, *, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. The store dir is kept."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None:
                _send(proc, signal.SIGTERM)
                async with timeout(grace):
                    await proc.wait()
        except asyncio.TimeoutError:
            log.warning("nats-server %s ignored SIGTERM for %.1fs; killing it", self.name, grace)
        finally:
            # Also on cancellation: never leave a server running behind a closed harness.
            if proc.returncode is None:
                _send(proc, signal.SIGKILL)
                await proc.wait()
            self._proc = None
        log.info("nats-server %s stopped", self.name, extra={"returncode": proc.returncode})

    async def kill(self) -> None:
        """SIGKILL without warning, as a crash would; for fault tests.

        Not a power cut: what the server wrote but did not fsync survives in the page
        cache, so a kill cannot show that `sync_interval: always` is needed.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            _send(proc, signal.SIGKILL)
        await proc.wait()
        self._proc = None

    async def restart(self) -> None:
        """Stop (if running) and start again on the same ports and store dir."""
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        """Stop for good and remove a temporary store dir. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self.stop()
        if self._config.temporary:
            await asyncio.to_thread(shutil.rmtree, self._config.store_dir, True)

    # -- monitoring ----------------------------------------------------------------------

    async def monitor(self, path: str) -> dict[str, Any]:
        """GET a monitoring endpoint, e.g. `await server.monitor("/jsz")`."""
        return await get_json(self.monitor_url, path)

    async def leafnode_count(self) -> int:
        """How many leaf node connections the server has now (from `/leafz`)."""
        leafz = await self.monitor("/leafz")
        return int(leafz.get("leafnodes", 0))

    async def wait_for_leafnodes(self, count: int = 1, *, timeout_s: float = 10.0) -> None:
        """Wait until exactly `count` leaf node links are up (0: until all are gone)."""

        async def linked() -> bool:
            try:
                return await self.leafnode_count() == count
            except MonitorUnavailable:
                return False

        try:
            await poll_until(linked, timeout_s=timeout_s)
        except asyncio.TimeoutError:
            raise HarnessError(
                f"nats-server {self.name}: {count} leaf node link(s) not seen in {timeout_s}s"
            ) from None

    # -- internals -----------------------------------------------------------------------

    def _write_config(self) -> Path:
        self._config.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self._config.store_dir / CONFIG_FILE
        conf.write_text(self._config.render(), encoding="utf-8")
        return conf

    async def _spawn(self, binary: Path, conf: Path) -> asyncio.subprocess.Process:
        # Both streams go to the log: a config error is printed before logging starts.
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._log_start = os.fstat(log_fd).st_size
        try:
            proc = await asyncio.create_subprocess_exec(
                str(binary),
                "-c",
                str(conf),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerStartError(f"cannot run {binary}: {exc}") from exc
        finally:
            os.close(log_fd)
        log.debug("spawned nats-server %s", self.name, extra={"pid": proc.pid, "conf": str(conf)})
        return proc

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> None:
        exited = asyncio.create_task(proc.wait(), name=f"nats-{self.name}-exit")
        ready = asyncio.create_task(self._poll_healthz(), name=f"nats-{self.name}-ready")
        done: set[asyncio.Task[Any]] = set()
        try:
            async with timeout(self._ready_timeout):
                done, _ = await asyncio.wait({exited, ready}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.TimeoutError:
            raise self._start_error(f"not ready after {self._ready_timeout:.0f}s") from None
        finally:
            for task in (exited, ready):
                task.cancel()
            await asyncio.gather(exited, ready, return_exceptions=True)
        if exited in done:
            raise self._start_error(f"exited with code {proc.returncode}")
        ready.result()

    async def _poll_healthz(self) -> None:
        async def healthy() -> bool:
            try:
                await self.monitor(_HEALTHZ)
            except MonitorUnavailable:
                return False
            return True

        # The outer timeout in _wait_ready bounds this; the inner one is a backstop.
        await poll_until(healthy, timeout_s=self._ready_timeout + 1)

    def _start_error(self, what: str) -> HarnessError:
        tail = self._log_tail()
        message = f"nats-server {self.name} {what}; last lines of {self.log_path}:\n{tail}"
        if "address already in use" in tail:
            return PortInUse(message)
        return ServerStartError(message)

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(self._log_start, f.seek(0, os.SEEK_END) - 16_384))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])


async def _create_gateway_streams(client_url: str, gateway: str) -> None:
    # Imported here: prepare.py builds on this module.
    from shared.natsrun.prepare import create_gateway_streams

    await create_gateway_streams(client_url, gateway=gateway)


def _send(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited between our check and now
        proc.send_signal(sig)
