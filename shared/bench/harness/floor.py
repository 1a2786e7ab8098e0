"""The floor a Python gateway daemon starts from: an interpreter with nats-py connected to
the leaf, doing nothing. Its start-up time and RSS are the footprint benchmark's reference.

    python -m shared.bench.harness.floor nats://127.0.0.1:4222

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
