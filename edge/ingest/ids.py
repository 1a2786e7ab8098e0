"""Ids and trace spans minted for every fired reading and every forwarded message.

`shared.messages.new_id` and `shared.trace.child_of` read `os.urandom` (a syscall) and
build a UUID / parse with a regex; on the hot path that is microseconds per reading.
These draw from `random` (seeded from the OS at start-up): unique enough for ids and
span ids, which need to be unpredictable to nobody, only not to collide.
"""

from __future__ import annotations

import random


def new_id() -> str:
    """A random 128-bit id in `shared.messages.new_id`'s form: 32 lowercase hex digits."""
    return f"{random.getrandbits(128):032x}"


def child_span(traceparent: str) -> str:
    """A new span of a `traceparent` the codec has validated: same version, trace id and
    flags, a new parent-id (W3C trace-context §3.2). Only for validated values."""
    span = random.getrandbits(64) or 1  # an all-zero parent-id is invalid (§3.2.2.3)
    return f"{traceparent[:36]}{span:016x}{traceparent[52:]}"
