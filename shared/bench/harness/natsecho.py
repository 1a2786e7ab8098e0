"""A second bare reference for the reflex round trip: the same echo written with nats-py on
the leaf's own subjects, as the daemon reads and commands, without any of baton's code.

    python -m shared.bench.harness.natsecho nats://127.0.0.1:4222 'bench.nats.*.r'

Its distance to the paho echo is what the Python NATS client and asyncio cost; the
daemon's distance to it is baton's own. Prints `ready` once subscribed; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def serve(url: str, pattern: str) -> None:
    import nats
    from nats.aio.msg import Msg

    nc = await nats.connect(url)

    async def echo(msg: Msg) -> None:
        await nc.publish(msg.subject[: -len(".r")] + ".cmd", msg.data)

    await nc.subscribe(pattern, cb=echo)
    await nc.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
