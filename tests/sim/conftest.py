"""Brokers and an MQTT probe for the simulator tests.

mosquitto    Debian's mosquitto on a free port with a temp config (skipped, with the
             reason, when the binary is absent; CI installs it)
broker_url   parametrized: the mosquitto URL, then the leaf nats-server's MQTT URL
             (via the `topology` fixture of tests/conftest.py)
probe        an async factory of started `simprobe.Probe`s, closed at teardown
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from simprobe import Probe, ProbeFactory

from shared.natsrun import free_port

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
READY_TIMEOUT_S = 10.0


def _drain(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Read the broker's log until it exits, so its pipe can never fill and block it."""
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of file: the broker exited


@contextlib.contextmanager
def run_mosquitto(folder: Path, extra: str = "") -> Iterator[str]:
    """A mosquitto broker on a free port, ready when its log says it is running."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; CI installs it)")
    port = free_port()
    conf = folder / "mosquitto.conf"
    # As root, mosquitto drops to user `mosquitto`, who cannot read pytest's private tmp dirs.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\npersistence false\n{user}"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type information\n"
        + (extra or "allow_anonymous true\n")
    )
    lines: queue.Queue[str | None] = queue.Queue()
    with subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        reader = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
        reader.start()
        try:
            _wait_running(lines)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            reader.join(timeout=10)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """Anonymous mosquitto on a free port."""
    with run_mosquitto(tmp_path) as url:
        yield url


def _wait_running(lines: queue.Queue[str | None]) -> None:
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            line = None
        if line is None:
            pytest.fail("mosquitto did not start:\n" + "".join(seen))
        if " running" in line:
            return
        seen.append(line)


@pytest.fixture(params=["mosquitto", "leaf"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Each broker test runs against mosquitto and against the leaf's MQTT listener."""
    if request.param == "mosquitto":
        return str(request.getfixturevalue("mosquitto"))
    url = request.getfixturevalue("topology").leaf.mqtt_url
    assert url is not None
    return str(url)


@pytest.fixture
async def probe() -> AsyncIterator[ProbeFactory]:
    """`await probe(url, *topics)`: a started, subscribed Probe, closed after the test."""
    made: list[Probe] = []

    async def make(url: str, *topics: str) -> Probe:
        p = Probe(url, f"probe-{len(made)}")
        made.append(p)
        return await p.start(*topics)

    yield make
    for p in reversed(made):
        with contextlib.suppress(Exception):
            await p.close()
