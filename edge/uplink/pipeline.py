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
never resolved and could only time out. A counter token instead of a NUID per message
is also cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(slots=True)
class Flight:
    """A batch sent, its PubAcks on their way. `settle()` it exactly once."""

    futures: list[asyncio.Future[None]]
    tokens: list[str]
    size: int
    """Messages in the batch; those past `len(futures)` were never sent (`cut`)."""
    deadline: float
    """Loop time after which a missing PubAck is a `PubAckTimeout`."""
    timeout_s: float
    cut: BaseException | None = None
    """What stopped the sending part-way (the connection closed or draining)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One JetStream publish. `headers` is handed to nats-py as is (it does not copy)."""

    subject: str
    payload: bytes
    headers: dict[str, str]


class Publisher:
    """Publishes batches and settles their PubAcks; `start()` before, `aclose()` after."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._cut = len(self._prefix) + 1
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._next = 0
        self._sub: Subscription | None = None
        self.duplicates = 0
        """PubAcks saying the message was already stored: re-sends, absorbed."""

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        if sub is not None:
            # A closed connection has no subscription left to undo.
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def publish_all(
        self, batch: Sequence[Outgoing], timeout_s: float
    ) -> list[BaseException | None]:
        """Publish `batch` pipelined; one outcome per message, in order: None = stored.

        Never raises for a failed message: a batch cut short by the connection (closed,
        draining) reports the unsent rest with that error.
        """
        return await self.settle(await self.send(batch, timeout_s))

    async def send(self, batch: Sequence[Outgoing], timeout_s: float) -> Flight:
        """Publish `batch` without waiting for its PubAcks; never raises a `NatsError`."""
        loop = asyncio.get_running_loop()
        flight = Flight([], [], len(batch), loop.time() + timeout_s, timeout_s)
        try:
            for out in batch:
                token = self._token()
                flight.futures.append(await self._send(out, token))
                flight.tokens.append(token)
        except NatsError as exc:
            flight.cut = exc
        except BaseException:
            self.forget(flight)
            raise
        return flight

    async def settle(self, flight: Flight) -> list[BaseException | None]:
        """Wait for `flight`'s PubAcks until its deadline; one outcome per message."""
        try:
            remaining = flight.deadline - asyncio.get_running_loop().time()
            pending = [fut for fut in flight.futures if not fut.done()]
            if pending:
                await asyncio.wait(pending, timeout=max(0.0, remaining))
        finally:  # on time-out and on cancellation: forget what is still pending
            self.forget(flight)
        outcomes = [_outcome(fut, flight.timeout_s) for fut in flight.futures]
        outcomes.extend(flight.cut for _ in range(flight.size - len(flight.futures)))
        return outcomes

    def forget(self, flight: Flight) -> None:
        """Stop waiting for what `flight` still expects (a PubAck arriving later is
        ignored). Safe to call twice."""
        for token in flight.tokens:
            fut = self._pending.pop(token, None)
            if fut is not None:
                fut.cancel()

    def _token(self) -> str:
        self._next += 1
        return str(self._next)

    async def _send(self, out: Outgoing, token: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        try:
            await self._nc.publish(
                out.subject, out.payload, reply=f"{self._prefix}.{token}", headers=out.headers
            )
        except BaseException:
            del self._pending[token]
            raise
        return fut

    async def _on_reply(self, msg: Msg) -> None:
        fut = self._pending.pop(msg.subject[self._cut :], None)
        if fut is None or fut.done():
            return  # late: its batch was settled without it
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            fut.set_exception(NoStreamResponseError())
            return
        if b'"error"' not in msg.data:  # a PubAck: parsing its JSON costs ~2 µs a message
            if b'"duplicate"' in msg.data:  # stored before: Nats-Msg-Id dedupe (ADR-31)
                self.duplicates += 1
            fut.set_result(None)
            return
        try:
            err = json.loads(msg.data).get("error")
        except (ValueError, AttributeError):
            err = {"code": 500, "description": f"not a PubAck: {msg.data[:80]!r}"}
        if err:
            fut.set_exception(_api_error(err))
        else:
            fut.set_result(None)


def _api_error(err: dict[str, object]) -> APIError:
    code = err.get("code")
    cls = _ERRORS.get(code, APIError) if isinstance(code, int) else APIError
    err_code = err.get("err_code")
    return cls(
        code=code if isinstance(code, int) else None,
        description=str(err.get("description", "")),
        err_code=err_code if isinstance(err_code, int) else None,
    )


def _outcome(fut: asyncio.Future[None], timeout_s: float) -> BaseException | None:
    if fut.cancelled():
        return PubAckTimeout(f"no PubAck within {timeout_s:g}s")
    # Retrieving the exception also keeps asyncio from logging it as never retrieved.
    return fut.exception()
