"""`baton edge run --config FILE` as a child process, the way an operator starts it.

    async with EdgeProcess(write_edge_config(dir, spec), dir / "edge.log") as edge:
        edge.ready_s          # spawn → the daemon's "ready" log line, seconds
        await edge.counter("baton_edge_readings_total", result="ok")

The daemon logs JSON (`--log-format json`); its "ready" line carries the HTTP port it
bound (`[http] port = 0`), where `/metrics` and `/healthz` are read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from shared.bench.harness.child import Child, ChildError, python_module
from shared.bench.harness.toml import toml_text
from shared.compat import timeout

READY_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 10.0
CONNECT_ATTEMPTS = 50
CONNECT_RETRY_S = 0.05

# Fires on every reading above the limit: no debounce, no hysteresis, no cooldown, so each
# probe of the round-trip benchmark gets its own command.
EVERY_READING_RULE: dict[str, Any] = {
    "name": "bench-hot",
    "metric": "temp_c",
    "above": 50.0,
    "debounce": 1,
    "cooldown_s": 0.0,
    "action": "fan",
    "params": {"on": True},
}
# The shipped bearing model scoring every pump reading; a threshold it never reaches,
# so it adds its inference to the path without firing commands of its own.
SCORING_MODEL: dict[str, Any] = {
    "name": "bearing",
    "dclass": "pump",
    "threshold": 1e12,
    "cooldown_s": 0.0,
}


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """The parts of `edge.toml` a benchmark varies; the rest are the daemon's defaults."""

    nats_url: str
    state_dir: Path
    gateway: str = "gw1"
    rules: Sequence[Mapping[str, Any]] | None = None
    """None keeps the daemon's default rules."""
    models: Sequence[Mapping[str, Any]] = ()
    uplink: bool = True
    downlink: bool = True
    command_format: str = "msgpack"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "gateway": self.gateway,
            "nats_url": self.nats_url,
            "state_dir": str(self.state_dir),
            "http": {"port": 0},
            "uplink": {"enabled": self.uplink},
            "downlink": {"enabled": self.downlink},
            "actuate": {"format": self.command_format},
        }
        if self.rules is not None:
            doc["rules"] = [dict(rule) for rule in self.rules]
        if self.models:
            doc["models"] = [dict(model) for model in self.models]
        doc.update(self.extra)
        return doc


def write_edge_config(directory: Path, spec: EdgeSpec) -> Path:
    path = directory / "edge.toml"
    path.write_text(toml_text(spec.document()), encoding="utf-8")
    return path


def _is_ready_line(line: str) -> bool:
    return '"edge.daemon"' in line and " ready: " in line


class EdgeProcess:
    def __init__(self, config: Path, log_path: Path) -> None:
        argv = python_module(
            "shared.cli.main", "edge", "run", "--config", str(config), "--log-format", "json"
        )
        self.child = Child(argv, log_path)
        self.ready_s = 0.0
        """Seconds from the spawn to the "ready" line."""
        self.uptime_ready_s: float | None = None
        """The daemon's own figure: process start (exec) to ready."""
        self.http_port = 0

    async def __aenter__(self) -> EdgeProcess:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        await self.child.start()
        line = await self.child.wait_for(_is_ready_line, timeout_s)
        self.ready_s = self.child.since_start()
        doc = json.loads(line)
        self.uptime_ready_s = doc.get("ready_s")
        self.http_port = int(doc.get("http_port") or 0)
        if not self.http_port:
            raise ChildError(f"the ready line names no HTTP port: {line}")

    async def stop(self) -> int | None:
        return await self.child.stop()

    def memory_mb(self) -> tuple[float, float]:
        return self.child.memory_mb()

    async def get(self, path: str) -> tuple[int, bytes]:
        if not self.child.running:
            raise self.child.error("is not running")
        return await http_get(self.http_port, path)

    async def metrics(self) -> dict[str, float]:
        status, body = await self.get("/metrics")
        if status != 200:
            raise ChildError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    async def counter(self, name: str, **labels: str) -> float:
        """One sample of a Prometheus counter (0 when it has none yet)."""
        key = name + _labels(labels)
        return (await self.metrics()).get(key, 0.0)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {"name{a=\"x\",b=\"y\"}": value}, labels sorted by name."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, brace, rest = key.partition("{")
        if brace:
            pairs = sorted(p for p in rest.rstrip("}").split(",") if p)
            key = name + "{" + ",".join(pairs) + "}"
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # The daemon logs "ready" a moment before its HTTP task first runs and listens
    # (asyncio's start_serving=False): a refusal in that window is not an answer yet.
    for _ in range(CONNECT_ATTEMPTS - 1):
        try:
            return await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            await asyncio.sleep(CONNECT_RETRY_S)
    return await asyncio.open_connection(host, port)


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """A bare HTTP/1.0 GET: (status, body)."""
    async with timeout(HTTP_TIMEOUT_S):
        reader, writer = await _connect(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
