"""The sagas this replica runs: their tasks, their leases, and taking over orphans.

A saga is taken over when its lease ends: the owner released it (a graceful shutdown
hands its sagas over at once), or stopped renewing it and the bucket TTL removed it (a
crash; every replica sees the server's expiry marker). A saga that fails on an error is
not released but left to expire, so a deterministic failure is retried once per lease
period, not in a hot loop between replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from nats.errors import Error as NatsError

from cloud.errors import Conflict
from cloud.planner.kv import Entry, is_removal
from cloud.planner.lease import Leases
from cloud.planner.saga import Saga, SagaDeps
from cloud.planner.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class SagaPool:
    def __init__(self, deps: SagaDeps, leases: Leases, counters: Counter[str]) -> None:
        self._deps = deps
        self._leases = leases
        self._counters = counters
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._tasks)

    def start(self, plan_id: str, epoch: int) -> None:
        """Run the saga of `plan_id`, whose lease we hold under `epoch`."""
        task = asyncio.create_task(self._run(plan_id, epoch), name=f"saga:{plan_id}")
        self._tasks[plan_id] = task
        task.add_done_callback(lambda done: self._forget(plan_id, done))

    async def adopt(self, plan_id: str) -> bool:
        """Take over `plan_id` if nobody holds its lease; True when we now run it."""
        if self._closing or plan_id in self._tasks:
            return False
        epoch = await self._leases.claim(plan_id)
        if epoch is None:
            return False
        self._counters["sagas.adopted"] += 1
        log.info("taking over plan %s (epoch %d)", plan_id, epoch, extra={"plan": plan_id})
        self.start(plan_id, epoch)
        return True

    async def on_lease(self, entry: Entry) -> None:
        """Lease bucket watch: an ended lease may be an orphaned saga."""
        if is_removal(entry) and entry.key not in self._tasks:
            await self.adopt(entry.key)

    async def renew_forever(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)  # a period, not a wait for some other task
            for plan_id in self._leases.held:
                await self._renew(plan_id)

    async def _renew(self, plan_id: str) -> None:
        try:
            kept = await self._leases.renew(plan_id)
        except NatsError as exc:  # the hub is unreachable: keep trying until the TTL
            log.warning("could not renew the lease of %s: %s", plan_id, exc)
            return
        task = self._tasks.get(plan_id)
        if not kept and task is not None:
            self._counters["sagas.lost"] += 1
            log.warning("lost the lease of %s, stopping its saga", plan_id)
            task.cancel()

    async def _run(self, plan_id: str, epoch: int) -> None:
        release = True
        try:
            await Saga(self._deps, plan_id, epoch).run()
            self._counters["sagas.finished"] += 1
        except Conflict as exc:
            self._counters["sagas.lost"] += 1
            log.info("plan %s has a new owner: %s", plan_id, exc, extra={"plan": plan_id})
            self._leases.forget(plan_id)
            release = False
        except Exception:
            self._counters["sagas.errors"] += 1
            log.exception("saga %s failed; retried when its lease ends", plan_id)
            self._leases.forget(plan_id)
            release = False
        finally:
            if release:  # done, or handed over on close (cancelled)
                with contextlib.suppress(NatsError):
                    await self._leases.release(plan_id)

    def _forget(self, plan_id: str, done: asyncio.Task[None]) -> None:
        if self._tasks.get(plan_id) is done:
            del self._tasks[plan_id]

    async def aclose(self) -> None:
        """Stop every saga and hand its lease over; safe to call twice."""
        self._closing = True
        await cancel_and_wait(self._tasks.values())
