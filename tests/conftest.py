"""Fixtures for every test: real nats-servers on free ports with temp stores.

    hub        a started hub `NatsServer` (JetStream domain "hub", leaf node port)
    topology   a started `LocalTopology`: hub + leaf for gateway "gw1" (domain
               "edge-gw1", MQTT listener), linked; `topology.hub`, `topology.leaf`
    no_nats_left
               fails the test if a nats-server child of this process outlives it;
               `hub` and `topology` use it, so their teardown is checked too

Both servers are function-scoped: no state is shared between tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.natsrun import LocalTopology, NatsServer, hub_config

GATEWAY_ID = "gw1"


def nats_children() -> set[int]:
    """Pids of live (not zombie) nats-server processes whose parent is this process (Linux /proc)."""
    me = os.getpid()
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces or parens.
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and comm == "nats-server" and state != "Z":
            found.add(int(stat.parent.name))
    return found


@pytest.fixture
def no_nats_left() -> Iterator[None]:
    """Assert the test (and the fixtures it uses after this one) stopped their servers."""
    before = nats_children()
    yield
    left = nats_children() - before
    for pid in left:  # fail, but do not let the leak spill into the next tests
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    assert not left, f"nats-server processes left running: {sorted(left)}"


@pytest.fixture
async def hub(tmp_path: Path, no_nats_left: None) -> AsyncIterator[NatsServer]:
    """A started hub nats-server with its store in the test's tmp_path."""
    async with NatsServer(hub_config(store_dir=tmp_path / "hub")) as server:
        yield server


@pytest.fixture
async def topology(tmp_path: Path, no_nats_left: None) -> AsyncIterator[LocalTopology]:
    """Hub + leaf for gateway "gw1", linked and carrying JetStream both ways."""
    async with LocalTopology(GATEWAY_ID, base_dir=tmp_path / "nats") as topo:
        yield topo
