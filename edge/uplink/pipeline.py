"""Pipelined JetStream publishing: send a batch, then settle every PubAck at once.

An awaited publish costs a round trip each (near 5k msgs/s on a gateway); sending a
whole batch and awaiting the PubAcks together reaches ~20k/s. `send()` returns a
`Flight` at once, so a caller can have several batches in flight and `settle()` them
in order (the forwarder); `publish_all()` is the two together. JetStream's publish
protocol is a plain NATS publish with a reply subject, answered by a PubAck (or an
error) on that subject (ADR-22), so one wildcard reply subscription serves every
message of every batch.

This replaces nats-py's `publish_async`, whose reply handler *raises* the APIError
of an error PubAck (`APIError.from_error` raises instead of returning, nats-py 2.16)
instead of setting it on the future: a refused publish ("maximum bytes exceeded") was
never resolved and could only time out. It is also cheaper per message: the reply
subject names the flight and the message's place in it (`<inbox>.<flight>.<i>`), each
PubAck fills one slot of its flight's outcomes, and a flight has one future, resolved
by its last PubAck (no future, callback and NUID per message); a batch is written as
one piece (wire.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.errors import (
    APIError,
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
)

from edge.uplink.wire import BatchWriter

_STATUS = "Status"
_NO_RESPONDERS = "503"  # no stream listens on the subject (or the hub is unreachable)
_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    404: NotFoundError,
    500: ServerError,
    503: ServiceUnavailableError,
}


class PubAckTimeout(asyncio.TimeoutError):
    """No PubAck within the deadline: the message may or may not be stored."""


class _Waiting:
    """The outcome of a message whose PubAck has not come (yet)."""

    __slots__ = ()


_WAITING = _Waiting()
Outcome = BaseException | None


@dataclass(slots=True, eq=False)
class Flight:
    """A batch sent, its PubAcks on their way. `settle()` it exactly once."""

    name: str
    """Its token in the reply subjects, `<inbox>.<name>.<i>`."""
    size: int
    """Messages in the batch; those past `sent` were never sent (`cut`)."""
    deadline: float
    """Loop time after which a missing PubAck is a `PubAckTimeout`."""
    timeout_s: float
    done: asyncio.Future[None]
    """Resolved when every sent message has its outcome."""
    sent: int = 0
    left: int = 0
    """PubAcks still expected."""
    cut: BaseException | None = None
    """What stopped the sending part-way (the connection closed or draining)."""
    outcomes: list[Outcome | _Waiting] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One JetStream publish. `headers` is sent as is (not copied)."""

    subject: str
    payload: bytes
    headers: dict[str, str]


class Publisher:
    """Publishes batches and settles their PubAcks; `start()` before, `aclose()` after."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._writer = BatchWriter(nc)
        self._prefix = nc.new_inbox()
        self._cut = len(self._prefix) + 1
        self._flights: dict[str, Flight] = {}
        self._next = 0
        self._sub: Subscription | None = None
        self.duplicates = 0
        """PubAcks saying the message was already stored: re-sends, absorbed."""

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*.*", cb=self._on_reply)

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        for flight in list(self._flights.values()):
            self.forget(flight)
        if sub is not None:
            # A closed connection has no subscription left to undo.
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def publish_all(self, batch: Sequence[Outgoing], timeout_s: float) -> list[Outcome]:
        """Publish `batch` pipelined; one outcome per message, in order: None = stored.

        Never raises for a failed message: a batch cut short by the connection (closed,
        draining) reports the unsent rest with that error.
        """
        return await self.settle(await self.send(batch, timeout_s))

    async def send(self, batch: Sequence[Outgoing], timeout_s: float) -> Flight:
        """Publish `batch` without waiting for its PubAcks; never raises a `NatsError`."""
        loop = asyncio.get_running_loop()
        self._next += 1
        name = str(self._next)
        flight = Flight(name, len(batch), loop.time() + timeout_s, timeout_s, loop.create_future())
        flight.outcomes = [_WAITING] * len(batch)
        reply = f"{self._prefix}.{name}."
        self._flights[name] = flight
        try:
            sent, flight.cut = await self._writer.write(
                [
                    (out.subject, f"{reply}{i}", out.headers, out.payload)
                    for i, out in enumerate(batch)
                ]
            )
        except BaseException:
            self.forget(flight)
            raise
        if sent < len(batch) and flight.cut is None:
            flight.cut = NatsError("not sent")
        flight.sent = sent
        # A write can yield to the loop, so PubAcks of its first messages may be in.
        flight.left += sent
        if flight.left <= 0:
            self._finish(flight)
        return flight

    async def settle(self, flight: Flight) -> list[Outcome]:
        """Wait for `flight`'s PubAcks until its deadline; one outcome per message."""
        try:
            remaining = flight.deadline - asyncio.get_running_loop().time()
            if not flight.done.done():
                await asyncio.wait((flight.done,), timeout=max(0.0, remaining))
        finally:  # on time-out and on cancellation: forget what is still pending
            self.forget(flight)
        timed_out = PubAckTimeout(f"no PubAck within {flight.timeout_s:g}s")
        return [
            (timed_out if i < flight.sent else flight.cut) if isinstance(out, _Waiting) else out
            for i, out in enumerate(flight.outcomes)
        ]

    def forget(self, flight: Flight) -> None:
        """Stop waiting for what `flight` still expects (a PubAck arriving later is
        ignored). Safe to call twice."""
        self._flights.pop(flight.name, None)
        if not flight.done.done():
            flight.done.cancel()

    def _finish(self, flight: Flight) -> None:
        if not flight.done.done():
            flight.done.set_result(None)

    async def _on_reply(self, msg: Msg) -> None:
        name, _, index = msg.subject[self._cut :].partition(".")
        flight = self._flights.get(name)
        if flight is None:
            return  # late: its batch was settled without it
        try:
            i = int(index)
            if not isinstance(flight.outcomes[i], _Waiting):
                return  # answered already
        except (ValueError, IndexError):
            return
        flight.outcomes[i] = self._outcome(msg)
        flight.left -= 1
        if flight.left == 0:
            self._finish(flight)

    def _outcome(self, msg: Msg) -> Outcome:
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            return NoStreamResponseError()
        if b'"error"' not in msg.data:  # a PubAck: parsing its JSON costs ~2 µs a message
            if b'"duplicate"' in msg.data:  # stored before: Nats-Msg-Id dedupe (ADR-31)
                self.duplicates += 1
            return None
        try:
            err = json.loads(msg.data).get("error")
        except (ValueError, AttributeError):
            err = {"code": 500, "description": f"not a PubAck: {msg.data[:80]!r}"}
        return _api_error(err) if err else None


def _api_error(err: dict[str, object]) -> APIError:
    code = err.get("code")
    cls = _ERRORS.get(code, APIError) if isinstance(code, int) else APIError
    err_code = err.get("err_code")
    return cls(
        code=code if isinstance(code, int) else None,
        description=str(err.get("description", "")),
        err_code=err_code if isinstance(err_code, int) else None,
    )
