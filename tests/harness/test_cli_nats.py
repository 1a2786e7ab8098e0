"""`baton nats up` as a user runs it: a subprocess that prints its URLs and stops on a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import nats
import pytest

from shared import subjects
from shared.compat import timeout
from shared.natsrun import LocalTopology

READY_LINE = "Ctrl-C to stop."
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


async def _read_until_ready(proc: asyncio.subprocess.Process) -> dict[str, str]:
    """Lines like `leaf  mqtt  mqtt://...` as {"leaf mqtt": url}, up to the ready line."""
    assert proc.stdout is not None
    fields: dict[str, str] = {}
    async with timeout(START_TIMEOUT_S):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"baton nats up exited early: {fields}"
            if line.strip() == READY_LINE:
                return fields
            parts = line.split()
            if len(parts) == 3 and parts[0] in {"hub", "leaf"}:
                fields[f"{parts[0]} {parts[1]}"] = parts[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_nats_up_prints_urls_and_stops_cleanly_on_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli.main", "nats", "up", "--dir", str(tmp_path),
        "--gateway", "gwx",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        fields = await _read_until_ready(proc)
        assert fields["leaf mqtt"].startswith("mqtt://127.0.0.1:")
        assert fields["leaf domain"] == "edge-gwx"
        assert fields["leaf store"] == str(tmp_path / "edge-gwx")
        nc = await nats.connect(fields["leaf client"], allow_reconnect=False)
        try:
            assert (await nc.jetstream(domain="hub").account_info()).domain == "hub"
            # Ready means the leaf stores what its MQTT listener acknowledges.
            uplink = await nc.jetstream(domain="edge-gwx").stream_info(subjects.UPLINK_STREAM)
            assert subjects.READINGS_ALL in (uplink.config.subjects or [])
        finally:
            await nc.close()
        proc.send_signal(sig)
        async with timeout(STOP_TIMEOUT_S):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert out.decode().splitlines()[-1] == "stopped"
    assert not [pid for pid in (fields["hub pid"], fields["leaf pid"]) if _alive(int(pid))]


async def _ensure_streams(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli.main", "nats", "ensure-streams", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with timeout(START_TIMEOUT_S):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_ensure_streams_creates_what_a_running_leaf_lacks(topology: LocalTopology) -> None:
    nc = await nats.connect(topology.leaf.client_url, allow_reconnect=False)
    try:
        await nc.jetstream(domain=topology.leaf.domain).delete_stream(subjects.UPLINK_STREAM)
        assert await _ensure_streams("--url", topology.leaf.client_url) == (
            0, "gateway gw1: leaf streams created UPLINK\n",
        )  # fmt: skip
        assert await _ensure_streams("--url", topology.leaf.client_url) == (
            0, "gateway gw1: leaf streams all present\n",
        )  # fmt: skip
        await nc.jetstream(domain=topology.leaf.domain).stream_info(subjects.UPLINK_STREAM)
    finally:
        await nc.close()


async def test_ensure_streams_needs_one_way_to_the_leaf() -> None:
    code, out = await _ensure_streams()
    assert code == 2 and "--leaf-config FILE or --url URL" in out
