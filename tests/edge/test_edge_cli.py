"""`baton edge run` and `baton edge check-config` as an operator runs them.

What a user notices: a bad config is one clear line and exit 2; the daemon logs "ready",
SIGHUP reloads the rules (a broken file is refused and the old rules stay), and SIGTERM
drains and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from edge.cli import edge_group
from shared.compat import timeout
from shared.natsrun import LocalTopology

WAIT_S = 15.0
EXAMPLE = Path(__file__).parents[2] / "edge" / "edge.example.toml"


def test_check_config_prints_the_effective_config() -> None:
    result = CliRunner().invoke(edge_group, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["gateway"] == "gw1" and doc["rules"][0]["name"] == "overheat"


def test_check_config_names_file_field_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text('[ingest]\nsource = "carrier-pigeon"\n')
    result = CliRunner().invoke(edge_group, ["check-config", str(bad)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith(f"{bad}: ingest.source: ") and "\n" not in line


def test_example_config_documents_every_field() -> None:
    from pydantic import BaseModel

    from edge.config import EdgeConfig

    text = EXAMPLE.read_text()
    missing = []

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if not any(form in text for form in (f"{name} =", f"[{name}]", f".{name}.")):
                missing.append(name)
            inner = field.annotation
            args = getattr(inner, "__args__", ())
            for candidate in (inner, *args):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate)

    walk(EdgeConfig)
    assert missing == []


class Daemon:
    """`baton edge run` in a subprocess, its JSON log lines read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self, containing: str) -> dict[str, Any]:
        assert self.proc.stderr is not None
        async with timeout(WAIT_S):
            while True:
                raw = await self.proc.stderr.readline()
                assert raw, f"the daemon exited before logging {containing!r}"
                try:
                    doc: dict[str, Any] = json.loads(raw)
                except ValueError:
                    continue
                if containing in doc.get("msg", ""):
                    return doc


async def start(config: Path, env: dict[str, str] | None = None) -> Daemon:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli.main", "edge", "run",
        "--config", str(config), "--log-format", "json",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return Daemon(proc)


def write_config(path: Path, leaf_url: str, above: float, *, broken: bool = False) -> None:
    path.write_text(
        f"""
nats_url = "{leaf_url}"
state_dir = "{path.parent / "state"}"
[uplink]
enabled = false
[downlink]
enabled = false
[http]
port = 0
[[rules]]
name = "hot"
metric = "temp_c"
{"" if broken else f"above = {above}"}
action = "fan"
"""
    )


async def test_run_reloads_on_sighup_and_drains_on_sigterm(
    topology: LocalTopology, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    write_config(config, topology.leaf.client_url, 70)
    daemon = await start(config)
    try:
        ready = await daemon.line("ready")
        assert ready["gateway"] == "gw1" and ready["rules"] == 1 and ready["ready_s"] > 0

        write_config(config, topology.leaf.client_url, 80, broken=True)
        daemon.proc.send_signal(signal.SIGHUP)
        refused = await daemon.line("rules not reloaded")
        assert refused["level"] == "error"

        write_config(config, topology.leaf.client_url, 80)
        daemon.proc.send_signal(signal.SIGHUP)
        await daemon.line("rules reloaded")

        daemon.proc.send_signal(signal.SIGTERM)
        await daemon.line("stopped")
        async with timeout(WAIT_S):
            assert await daemon.proc.wait() == 0
    finally:
        if daemon.proc.returncode is None:
            daemon.proc.kill()
            await daemon.proc.wait()


async def test_run_without_a_leaf_fails_with_one_line(tmp_path: Path) -> None:
    from shared.natsrun import free_port

    config = tmp_path / "edge.toml"
    write_config(config, f"nats://127.0.0.1:{free_port()}", 70)
    daemon = await start(config)
    assert daemon.proc.stderr is not None
    async with timeout(WAIT_S):
        err = await daemon.proc.stderr.read()
        code = await daemon.proc.wait()
    assert code == 2
    assert b"error: cannot connect to the leaf" in err


async def test_run_speaks_the_systemd_notify_protocol(
    topology: LocalTopology, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    write_config(config, topology.leaf.client_url, 70)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()

        async def next_state() -> str:
            async with timeout(WAIT_S):
                return (await loop.sock_recv(sock, 4096)).decode()

        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000"}
        daemon = await start(config, env)
        try:
            assert (await next_state()).startswith("READY=1")
            assert await next_state() == "WATCHDOG=1"
            assert await next_state() == "WATCHDOG=1"  # every 50 ms, from the event loop
            daemon.proc.send_signal(signal.SIGTERM)
            while (state := await next_state()) == "WATCHDOG=1":
                pass
            assert state == "STOPPING=1"
            async with timeout(WAIT_S):
                assert await daemon.proc.wait() == 0
        finally:
            if daemon.proc.returncode is None:
                daemon.proc.kill()
                await daemon.proc.wait()
