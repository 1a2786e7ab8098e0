"""The floor a Python gateway daemon starts from: an interpreter with nats-py connected to
the leaf, doing nothing. Its start-up time and RSS are the footprint benchmark's reference.

    python shared/bench/harness/floor.py nats://127.0.0.1:4222

Run as a script, not with `-m`: that would import the `shared` and `shared.bench`
packages first (pydantic, every wire message, the bench harness: ~11 MB), which a bare
nats-py process does not have. Nothing here imports them either.

Prints `ready` once connected; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def serve(url: str) -> None:
    import nats

    nc = await nats.connect(url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
