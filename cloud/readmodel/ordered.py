"""An ordered push consumer that comes back after a hub restart, whatever it started at.

nats-py (2.16) re-creates an ordered consumer after a gap or two missed idle heartbeats,
from the stream sequence it had reached, by editing the consumer request it keeps: it
sets `deliver_policy=by_start_sequence` and `opt_start_seq`, but leaves an
`opt_start_time` the first request had. The hub refuses that pair (a `BadRequestError`
through the connection's error callback, every two heartbeats, for ever) and the feed
stays dead. nats.go had the same bug and clears the start time on retry (nats.go#1341);
`subscribe_ordered` does that to the request nats-py keeps, once the first consumer
exists and the start time has done its work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

log = logging.getLogger(__name__)

# Two missed heartbeats make nats-py re-create the consumer: after a hub restart, a feed
# is back within about twice this instead of nats-py's default ~10 s.
IDLE_HEARTBEAT_S: Final = 2.0


async def subscribe_ordered(
    js: JetStreamContext,
    subject: str,
    *,
    stream: str,
    config: ConsumerConfig,
    cb: Callable[[Msg], Awaitable[None]],
) -> Subscription:
    """`js.subscribe(subject, ordered_consumer=True, ...)` whose re-creations are valid."""
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        idle_heartbeat=IDLE_HEARTBEAT_S,
        config=config,
        cb=cb,
    )
    # nats-py keeps the request on the inner subscription's `_jsi._ccreq`
    # (JetStreamContext._JSI); if that ever moves, the feed still starts, and the warning
    # says its restarts need a look.
    inner = getattr(sub, "_sub", None)
    request = getattr(getattr(inner, "_jsi", None), "_ccreq", None)
    if isinstance(request, ConsumerConfig):
        request.opt_start_time = None
    else:
        log.warning("ordered consumer on %s: cannot clear its start time for restarts", subject)
    return sub
