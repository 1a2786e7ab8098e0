"""`LeaseKeeper`: the holder's side of a lease — renew it, and know until when to act.

The holder may act until `sent + ttl * (1 - SAFETY)`, where `sent` is the moment it sent
its last renewal that the hub accepted (loop.time(), a monotonic clock: no wall clock is
compared across machines). An observer takes over only `ttl + grace` after it *saw* that
revision, which is later still (`board`). A paused holder (SIGSTOP) finds on waking that
its time is up and stops before acting; what it had already sent carries its old epoch
and is refused downstream.

Renewals run every `ttl / RENEWALS` under a lock shared with `hand_over`, so a renewal
never races the flip to a new owner. A renewal the hub does not take (it is away: the
leaf answers "no responders" at once) is tried again with backoff, from `RETRY_S` up to
a quarter of the renewal period, and logged once per outage, not once per try.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Final

from shared.compat import timeout
from shared.errors import TransportError
from shared.session.errors import LeaseLost, SessionError
from shared.session.lease import Lease, LeaseStore, LeaseValue
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)

RENEWALS: Final = 3  # renewals per TTL: two can fail before the lease runs out
SAFETY: Final = 0.1  # stop acting this fraction of the TTL early (clock-rate drift, GC)
RETRY_S: Final = 0.05  # the first retry of a failed renewal; doubled up to ttl / RENEWALS / 4


class LeaseKeeper:
    """Holds one lease; an async context manager. Leaving it stops renewing but does not
    release the lease (a crash looks the same: the lease runs out)."""

    def __init__(self, store: LeaseStore, lease: Lease, *, sent_at: float) -> None:
        self._store = store
        self._loop = asyncio.get_running_loop()
        self._lease = lease
        self._valid_until = sent_at + lease.ttl_s * (1 - SAFETY)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()
        self.reason = ""
        self.failures = 0  # renewals failed in a row

    @property
    def lease(self) -> Lease:
        return self._lease

    @property
    def epoch(self) -> int:
        return self._lease.epoch

    def valid(self) -> bool:
        """May the holder act now? False once lost, handed over, or past its time."""
        return not self.lost.is_set() and self._loop.time() < self._valid_until

    async def __aenter__(self) -> LeaseKeeper:
        name = f"lease:{self._lease.session}"
        self._task = asyncio.create_task(self._run(), name=name)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def hand_over(self, value: LeaseValue) -> Lease:
        """CAS the lease to a new owner and stop renewing; the new lease (its revision is
        the new epoch). Raises `LeaseLost`, or `TransportError` when the outcome is unknown."""
        async with self._lock:
            if not self.valid():
                raise LeaseLost(self._lease.session, self.reason or "expired")
            new = await self._store.hand_over(self._lease, value)
            self._lose("handed over")
            return new

    def forfeit(self, reason: str) -> None:
        """Stop acting on this lease (another owner holds it now)."""
        self._lose(reason)

    async def release(self) -> None:
        """End the session's lease (nobody owns it any more)."""
        async with self._lock:
            self._lose("released")
            await self._store.release(self._lease)

    async def _run(self) -> None:
        interval = self._lease.ttl_s / RENEWALS
        loop = asyncio.get_running_loop()
        delay = interval
        while not self.lost.is_set():
            await asyncio.sleep(delay)  # a renewal period (or a retry), not a poll
            async with self._lock:
                if self.lost.is_set():
                    return
                if await self._renew(loop.time()):
                    delay = interval
                else:
                    delay = min(RETRY_S * 2 ** min(self.failures, 16), interval / 4)

    async def _renew(self, sent: float) -> bool:
        """One renewal; False to retry soon (the hub did not answer in time)."""
        loop = asyncio.get_running_loop()
        left = self._valid_until - sent
        if left <= 0:
            self._lose("not renewed within its TTL")
            return True
        try:
            async with timeout(left):
                self._lease = await self._store.renew(self._lease)
        except (TransportError, TimeoutError, asyncio.TimeoutError) as exc:
            self.failures += 1
            if self.failures == 1:
                log.info("renewing %s failed: %r; trying again", self._lease.session, exc)
            if loop.time() < self._valid_until:
                return False
            self._lose("hub unreachable for its TTL")
            return True
        except LeaseLost:
            return await self._check_ambiguous()
        if self.failures:
            log.info("lease of %s renewed after %d failed tries", self._lease.session,
                     self.failures)  # fmt: skip
            self.failures = 0
        self._valid_until = sent + self._lease.ttl_s * (1 - SAFETY)
        return True

    async def _check_ambiguous(self) -> bool:
        """A CAS failed. If an earlier renewal that timed out did land, the lease is
        still ours at a newer revision: adopt it. Otherwise it is lost."""
        try:
            current = await self._store.get(self._lease.session)
        except SessionError:
            current = None
        except TransportError:
            return False
        mine = self._lease.value.owner
        if current is not None and current.value.owner == mine and current.epoch == self.epoch:
            self._lease = current
            return False  # renew again from the adopted revision
        self._lose(f"taken by {current.value.owner if current else 'nobody'}")
        return True

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            log.info("lease of %s ends: %s", self._lease.session, reason)
