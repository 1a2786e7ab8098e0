"""Pulling from a durable JetStream consumer: the one place nats-py's fetch is called.

Both FLEET consumers of a replica (ingest, `cloud.ingest.consumer`; the planner's event
and ack consumers, `cloud.planner.consumer`) fetch through `fetch`, so they agree on
what a quiet fetch and a hub error look like:

- quiet: nats-py 2.16 ends a fetch that found nothing with `nats.errors.TimeoutError`
  (or its subclass `FetchTimeoutError`) from some steps and with a plain
  `asyncio.TimeoutError` from others (`PullSubscription._fetch_n`, the lingering
  request). Either is an empty list here, never an exception.
- hub errors (disconnected, restarting, the consumer or its leader gone): raised as
  `TransportError`, which says a retry can help; the caller waits and fetches again.
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.errors import TransportError


async def fetch(psub: JetStreamContext.PullSubscription, batch: int, timeout_s: float) -> list[Msg]:
    """Up to `batch` messages, waiting at most about `timeout_s`; [] when none came."""
    try:
        return await psub.fetch(batch, timeout=timeout_s)
    except asyncio.TimeoutError:  # nats.errors.TimeoutError is one as well
        return []
    except (nats.errors.Error, OSError) as exc:
        raise TransportError(f"fetch: {exc!r}") from exc


async def ack_floor(psub: JetStreamContext.PullSubscription) -> int:
    """The consumer's ack floor: every message of its stream up to this sequence was
    acked or terminated (JetStream `ConsumerInfo.ack_floor.stream_seq`)."""
    try:
        info = await psub.consumer_info()
    except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
        raise TransportError(f"consumer info: {exc!r}") from exc
    return info.ack_floor.stream_seq if info.ack_floor is not None else 0
