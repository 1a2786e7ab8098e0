"""`baton sim` as a user runs it: one-line errors with exit code 2, the summary, the will."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from simhelpers import Probe, ProbeFactory

from shared.natsrun import free_port
from shared.subjects import mqtt_status

BATON = [sys.executable, "-m", "shared.cli.main"]


def baton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BATON, *args], capture_output=True, text=True, timeout=60, check=False)


def test_a_bad_scenario_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nrate_hz = "fast"\n[[profile]]\nname = "a"\n[profile.humidity]\n')
    result = baton("sim", "run", "--scenario", str(path), "--broker", "mqtt://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {path}: rate_hz: Input should be a valid number, unable to parse string as a number"
    ]


def test_an_unreachable_broker_is_one_line_and_exit_code_2() -> None:
    port = free_port()  # nothing listens there
    result = baton("sim", "run", "--broker", f"mqtt://127.0.0.1:{port}", "--duration", "1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: cannot reach broker 127.0.0.1:{port}: Connection refused"
    ]


def test_list_scenarios_names_the_shipped_ones() -> None:
    result = baton("sim", "list-scenarios")
    assert result.returncode == 0
    assert {line.split()[0] for line in result.stdout.splitlines()} >= {
        "pump-overheat",
        "bearing-wear",
        "flaky-network",
        "bad-payloads",
        "fleet",
    }


def test_the_summary_line_and_json_report_the_same_counts(mosquitto: str, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = baton(
        "sim",
        "run",
        "--broker",
        mosquitto,
        "--scenario",
        "bad-payloads",
        "--rate",
        "20",
        "--speed",
        "2",
        "--duration",
        "1.5",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(out.read_text())
    assert counts["sent"] == counts["acked"] == counts["readings"] == 60
    assert counts["malformed"] == {"oversized": 2, "truncated": 6, "wrong_types": 4}
    [line] = result.stdout.splitlines()
    assert "sent 60, acked 60, dropped from buffer 0, reconnects 0" in line
    assert "malformed oversized=2 truncated=6 wrong_types=4" in line


async def start_sim(broker: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *BATON,
        "sim",
        "run",
        "--broker",
        broker,
        "--scenario",
        "pump-overheat",
        "--duration",
        "0",
        "--no-progress",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def status_becomes(listener: Probe, value: bytes) -> None:
    while (await listener.next()).payload != value:
        pass


async def test_the_last_will_fires_when_the_process_is_killed(
    broker_url: str, probe: ProbeFactory
) -> None:
    listener = await probe(broker_url, mqtt_status("pump-0"))
    proc = await start_sim(broker_url)
    try:
        await status_becomes(listener, b"online")
        proc.kill()  # SIGKILL: no clean DISCONNECT, so only the broker can tell
        await status_becomes(listener, b"offline")
    finally:
        await proc.communicate()
    assert proc.returncode == -signal.SIGKILL


async def test_ctrl_c_stops_cleanly_with_the_summary(
    mosquitto: str, probe: ProbeFactory, tmp_path: Path
) -> None:
    listener = await probe(mosquitto, mqtt_status("pump-0"))
    out = tmp_path / "summary.json"
    proc = await start_sim(mosquitto, "--rate", "50", "--json", str(out))
    await status_becomes(listener, b"online")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await proc.communicate()
    await status_becomes(listener, b"offline")  # announced, since a clean exit sends no will
    assert proc.returncode == 0, stderr
    assert stdout.decode().startswith("sim: 1 devices,")
    assert json.loads(out.read_text())["sent"] >= 1
