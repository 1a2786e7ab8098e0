"""A cloud owner in its own process, for the SIGSTOP test (`python zombie.py HUB SESSION`).

It takes handoffs as `cloud:z1`. Once it owns SESSION it prints `owner <epoch>`, then every
50 ms sends an actuator command for the session at its epoch (on `zombie.cmd`) and tries
to add an event to the session; the first time it may not, it prints `fenced <reason>`.
Stopped with SIGSTOP and woken with SIGCONT, it is the paused old owner of DESIGN
"Edge handoff". SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import nats

from shared.agent import AgentSession, RuleBackend
from shared.codec import encode
from shared.messages import Command, ContentChunk, SessionSnapshot, now_ms
from shared.session import Owner, SessionAgent, SessionError, SessionHost, SessionSettings

COMMANDS = "zombie.cmd"


async def load(snapshot: SessionSnapshot) -> SessionAgent:
    return AgentSession.from_snapshot(snapshot, backend=RuleBackend(), side="cloud")


async def act(host: SessionHost, session: str, nc: nats.aio.client.Client) -> None:
    runner = host.runners[session]
    print(f"owner {runner.epoch}", flush=True)
    fenced = False
    while True:
        command = Command(device="pump1", action="fan", deadline_ms=now_ms() + 60_000,
                          session=session, epoch=runner.epoch)  # fmt: skip
        await nc.publish(COMMANDS, encode(command))
        try:
            await runner.emit(ContentChunk, text="zombie")
        except SessionError as exc:
            if not fenced:
                print(f"fenced {exc}", flush=True)
            fenced = True
        await asyncio.sleep(0.05)


async def main(url: str, session: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    nc = await nats.connect(url)
    settings = SessionSettings(ttl_s=2.0, heartbeat_s=0.2)
    async with SessionHost(nc, Owner("cloud", "z1"), load, settings=settings) as host:
        owned = asyncio.Event()
        host.on_runner(lambda runner: owned.set())
        print("ready", flush=True)
        await owned.wait()
        acting = asyncio.create_task(act(host, session, nc))
        await stop.wait()
        acting.cancel()
        await asyncio.gather(acting, return_exceptions=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
