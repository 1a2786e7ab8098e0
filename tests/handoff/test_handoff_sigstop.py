"""A real paused owner: the cloud owner's process is stopped (SIGSTOP), the gateway takes
the session back, and when the old owner wakes up (SIGCONT) it is fenced out.

What a user notices: after the gateway took over, the old owner's late commands do
nothing to the device and nothing it says reaches the conversation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from handoffkit import GW, WAIT_S, Sides, running, start_session
from nats.aio.msg import Msg

from edge.actuate import ActuationGuard, GuardPolicy
from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared.codec import decode
from shared.compat import timeout
from shared.messages import Command, ContentChunk, now_ms
from shared.session.log import read_log
from shared.session.runner import hub_js

ZOMBIE = Path(__file__).with_name("zombie.py")


class Device:
    """The pump behind the edge guard: counts what the guard let through or refused."""

    def __init__(self) -> None:
        self.guard = ActuationGuard(GuardPolicy.build(ActuateConfig(), frozenset({"fan"})))
        self.accepted: list[int] = []
        self.refused: list[int] = []
        self.changed = asyncio.Event()

    def command(self, cmd: Command) -> None:
        try:
            self.guard.check(cmd, now_ms())
            self.accepted.append(cmd.epoch)
        except GuardRefused:
            self.refused.append(cmd.epoch)
        self.changed.set()

    async def until(self, done: object) -> None:
        async with timeout(WAIT_S):
            while not callable(done) or not done():
                self.changed.clear()
                await self.changed.wait()


async def line(proc: asyncio.subprocess.Process, prefix: str) -> str:
    assert proc.stdout is not None
    async with timeout(WAIT_S * 2):  # the child imports aiortc and pydantic first
        while True:
            text = (await proc.stdout.readline()).decode()
            assert text, "the zombie exited"
            if text.startswith(prefix):
                return text.strip()


async def test_a_paused_owner_wakes_up_fenced_out(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    device = Device()
    listener = await hub_sides.connect(hub_sides.cloud_url)

    async def deliver(msg: Msg) -> None:
        device.command(decode(msg.data, Command))

    await listener.subscribe("zombie.cmd", cb=deliver)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ZOMBIE), hub_sides.cloud_url, "s1",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    try:
        await line(proc, "ready")
        moved = await edge.handoff("s1", "cloud")
        assert moved.ok and moved.owner == "cloud:z1", moved.error
        assert await line(proc, "owner") == f"owner {moved.epoch}"
        await device.until(lambda: moved.epoch in device.accepted)  # it acts while it owns

        os.kill(proc.pid, signal.SIGSTOP)
        await running(edge, "s1")  # its lease ran out; the gateway took the session back
        reclaimed = edge.runners["s1"].epoch
        device.command(Command(device="pump1", action="fan", deadline_ms=now_ms() + 5000,
                               session="s1", epoch=reclaimed))  # fmt: skip
        os.kill(proc.pid, signal.SIGCONT)

        assert (await line(proc, "fenced")).startswith("fenced ")
        await device.until(lambda: moved.epoch in device.refused)  # its late commands
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
        await proc.wait()
    assert reclaimed > moved.epoch and reclaimed in device.accepted
    log = await read_log(hub_js(edge.nc), "s1", after=0)
    late = [e for e in log if isinstance(e, ContentChunk) and e.epoch == moved.epoch]
    assert all(e.seq < next(e.seq for e in log if e.epoch == reclaimed) for e in late)
    assert edge.lease("s1") is not None and edge.lease("s1").value.owner == f"edge:{GW}"  # type: ignore[union-attr]
