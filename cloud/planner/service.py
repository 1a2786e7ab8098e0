"""`PlannerService`: one replica's background planner.

    FLEET fleet.*.dec.*, fleet.*.status.* ──(durable cloud-planner)──▶ Intake ─▶ Planning
    FLEET fleet.*.ack.*  ──(durable cloud-planner-acks)──▶ AckBook.file (planner KV)
    every schedule_s ──▶ take over orphans; one elected replica plans a scheduled round
    Planning ─▶ agents ─▶ proposals ─▶ plans KV + lease ─▶ SagaPool ─▶ DOWNLINK commands
    plans KV ──watch──▶ PlanMirror (SQLite) ──▶ plans(), plan(), history(), subscribe()

Replicas share the durable consumers (they split the events) and the KV buckets (plan
records, leases, dedupe locks, acks, firing windows), so any replica can die: its sagas'
leases end and another replica continues them from the stored record.

Every loop above runs supervised (`tasks.supervised`): one that fails after it came up is
logged with its traceback, counted (`loops.crashed`, and `on_loop_error` for the
replica's metrics) and started again after a back-off, never left dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError
from nats.js.kv import KeyValue

from cloud.agents import AgentContext, AgentRegistry, AgentStatus, Trigger
from cloud.errors import Conflict
from cloud.planner import kv
from cloud.planner.acks import AckBook
from cloud.planner.config import PlannerConfig
from cloud.planner.consumer import DurableConsumer
from cloud.planner.intake import Intake, route
from cloud.planner.lease import Leases
from cloud.planner.llm import LlmBackend, LlmPlanner
from cloud.planner.mirror import PlanMirror
from cloud.planner.planning import Planning, PlanningDeps, parse_spec
from cloud.planner.pool import SagaPool
from cloud.planner.records import PlanRecord, StepEvent
from cloud.planner.saga import SagaDeps
from cloud.planner.setup import build_registry
from cloud.planner.store import PlanStore
from cloud.planner.tasks import Loop, cancel_and_wait, supervised
from cloud.planner.windows import FiringWindows
from cloud.twins.view import FleetView
from shared import codec
from shared.compat import timeout
from shared.lifecycle import Service
from shared.messages import CommandAck, Plan, now_ms

log = logging.getLogger(__name__)

EVENT_FILTERS = ["fleet.*.dec.*", "fleet.*.status.*"]
ACK_FILTERS = ["fleet.*.ack.*"]
# How long start() waits for the KV watches to replay what the buckets hold.
REPLAY_TIMEOUT_S = 30.0
Listener = Callable[[PlanRecord], None]


class PlannerService(Service):
    """The background planner of one orchestrator replica (an async context manager).

    `db_path`: the SQLite copy (None: in memory). `replicas`: JetStream replicas of the
    buckets it creates. `registry`: agents to use instead of the configured ones.
    `llm_backend`: an `LlmBackend` to plan with instead of llama.cpp over `model_path`.
    `on_loop_error`: called with a loop's name each time one fails and is restarted.
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        cfg: PlannerConfig,
        fleet: FleetView,
        replica: str,
        *,
        db_path: Path | None = None,
        replicas: int = 1,
        registry: AgentRegistry | None = None,
        llm_backend: LlmBackend | None = None,
        on_loop_error: Callable[[str], None] | None = None,
    ) -> None:
        self._nc = nc
        self._js = js
        self._cfg = cfg
        self._fleet = fleet
        self._replica = replica
        self._db_path = db_path
        self._replicas = replicas
        self._registry = registry
        self._llm_backend = llm_backend
        self._on_loop_error = on_loop_error or (lambda name: None)
        self._llm: LlmPlanner | None = None
        self._mirror: PlanMirror | None = None
        self._planning: Planning | None = None
        self._pool: SagaPool | None = None
        self._acks: AckBook | None = None
        self._coord: KeyValue | None = None
        self._intake: Intake | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []
        self._closed = False
        self.counters: Counter[str] = Counter()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the buckets, replay them, start consuming; takes over orphaned sagas."""
        if self._mirror is not None or self._closed:
            raise RuntimeError("PlannerService.start() runs once")
        cfg = self._cfg
        plans = await kv.open_bucket(
            self._js, cfg.plans_bucket, ttl_s=cfg.retention_s, replicas=self._replicas
        )
        coord = await kv.open_bucket(self._js, cfg.coord_bucket, replicas=self._replicas)
        leases_kv = await kv.open_bucket(
            self._js, cfg.leases_bucket, ttl_s=cfg.lease_s, markers=True, replicas=self._replicas
        )
        self._coord = coord
        self._mirror = PlanMirror(self._db_path)
        self._acks = AckBook(coord)
        leases = Leases(self._js, leases_kv, cfg.leases_bucket, self._replica)
        store = PlanStore(plans, coord)
        self._pool = SagaPool(self._saga_deps(store), leases, self.counters)
        self._planning = Planning(self._planning_deps(store, leases, self._pool))
        await self._start_feeds(plans, leases_kv)
        await self._start_consumers(coord)
        await self._scan()
        log.info("planner %s started", self._replica, extra={"replica": self._replica})

    def _saga_deps(self, store: PlanStore) -> SagaDeps:
        assert self._acks is not None
        return SagaDeps(self._js, store, self._acks, self._fleet, self._replica, self._saved)

    def _planning_deps(self, store: PlanStore, leases: Leases, pool: SagaPool) -> PlanningDeps:
        assert self._mirror is not None
        if self._registry is None:
            self._registry, self._llm = build_registry(self._cfg, self._llm_backend)
        step_ms = int(self._cfg.step_deadline_s * 1000)
        ctx = AgentContext(self._fleet, self._replica, step_ms)
        cooldown_ms = int(self._cfg.cooldown_s * 1000)
        return PlanningDeps(
            self._registry, ctx, self._mirror, store, leases, pool, self.counters,
            cooldown_ms, self._saved,
        )  # fmt: skip

    async def _start_feeds(self, plans: KeyValue, leases_kv: KeyValue) -> None:
        """The KV watches: plan records → mirror, acks → sagas, ended leases → takeover."""
        assert self._acks is not None and self._pool is not None
        pool, acks_book = self._pool, self._acks
        mirrored = asyncio.Event()
        feed = self._spawn(
            "plans-feed", lambda: kv.follow(plans, ">", self._on_plan_entry, mirrored), mirrored
        )
        acks = self._spawn("acks-feed", acks_book.follow, acks_book.ready)
        self._spawn("leases-feed", lambda: kv.follow(leases_kv, ">", pool.on_lease))
        self._spawn("lease-renewal", lambda: pool.renew_forever(self._cfg.lease_s / 3))
        await _ready(mirrored, feed)
        await _ready(acks_book.ready, acks)

    async def _start_consumers(self, coord: KeyValue) -> None:
        cfg = self._cfg
        window_ms = int(cfg.repeated_action_window_s * 1000)
        self._intake = Intake(cfg, FiringWindows(coord, window_ms))
        events = self._consumer(cfg.consumer, EVENT_FILTERS, self._on_event)
        acks = self._consumer(cfg.ack_consumer, ACK_FILTERS, self._on_ack)
        events_task = self._spawn("fleet-events", events.run, events.ready)
        acks_task = self._spawn("fleet-acks", acks.run, acks.ready)
        self._spawn("schedule", self._schedule_forever)
        await _ready(events.ready, events_task)
        await _ready(acks.ready, acks_task)

    def _consumer(
        self, durable: str, filters: list[str], handler: Callable[[Msg], Coroutine[Any, Any, None]]
    ) -> DurableConsumer:
        return DurableConsumer(
            self._js, durable, filters, handler, self.counters,
            ack_wait_s=self._cfg.ack_wait_s, max_deliver=self._cfg.max_deliver,
        )  # fmt: skip

    def _spawn(self, name: str, loop: Loop, up: asyncio.Event | None = None) -> asyncio.Task[None]:
        """Run `loop` supervised; `up`: set once it is ready (a failure before that ends it)."""
        task = asyncio.create_task(
            supervised(name, loop, self._loop_failed, up=up), name=f"planner:{name}"
        )
        self._tasks.append(task)
        task.add_done_callback(self._loop_ended)
        return task

    def _loop_failed(self, name: str, error: BaseException | None) -> None:
        self.counters["loops.crashed"] += 1
        self._on_loop_error(name)
        how = "ended by itself" if error is None else "failed"
        log.error("planner loop %s %s; starting it again", name, how, exc_info=error)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        # Only a loop that failed before it was ready ends (start() raises it too).
        if not task.cancelled() and task.exception() is not None:
            self.counters["loops.crashed"] += 1
            log.error("planner loop %s stopped", task.get_name(), exc_info=task.exception())

    async def aclose(self) -> None:
        """Stop taking triggers, hand running sagas over, close; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(self._tasks)  # input first: no new plans while sagas hand over
        self._tasks.clear()
        if self._pool is not None:
            await self._pool.aclose()
        if self._llm is not None:
            await self._llm.aclose()
        if self._mirror is not None:
            self._mirror.close()
        log.info("planner %s closed", self._replica, extra={"replica": self._replica})

    # --- queries ------------------------------------------------------------------------

    def plans(self, limit: int = 50) -> list[Plan]:
        """The newest plans first, from this replica's SQLite copy."""
        return self._require_mirror().plans(limit)

    def plan(self, plan_id: str) -> Plan | None:
        record = self._require_mirror().record(plan_id)
        return None if record is None else record.plan

    def record(self, plan_id: str) -> PlanRecord | None:
        """The plan with its saga bookkeeping (owner, deadlines, history)."""
        return self._require_mirror().record(plan_id)

    def history(self, plan_id: str) -> list[StepEvent]:
        """The plan's step history, oldest first (empty for an unknown plan)."""
        return self._require_mirror().history(plan_id)

    def agents(self) -> list[AgentStatus]:
        return [] if self._registry is None else self._registry.status()

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every plan record change; returns the unsubscribe."""
        self._listeners.append(listener)

        def undo() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return undo

    async def request_plan(self, trigger: str, reason: str) -> Plan | None:
        """Plan now: `trigger` is `KIND[:GATEWAY[/DEVICE]]` (e.g. `anomaly:gw1/pump-1`).
        The first plan opened, or None when it was deduped or nobody proposed one.
        Raises `PlanError` for a malformed trigger."""
        spec = parse_spec(trigger, reason)
        opened = await self._require_planning().plan(spec)
        return opened[0] if opened else None

    # --- handlers -----------------------------------------------------------------------

    async def _on_event(self, msg: Msg) -> None:
        assert self._intake is not None
        found = await self._intake.trigger(msg)
        if found is not None:
            await self._require_planning().plan(found)

    async def _on_ack(self, msg: Msg) -> None:
        where = route(msg.subject)
        if where is None or where[1] != "ack":
            return
        assert self._acks is not None
        filed = await self._acks.file(codec.decode(msg.data, CommandAck))
        self.counters[{True: "acks.filed", False: "acks.duplicate", None: "acks.other"}[filed]] += 1

    def _on_plan_entry(self, entry: kv.Entry) -> None:
        if kv.is_removal(entry) or not entry.value:
            return  # ended plans leave the hub after retention_s; the SQLite copy keeps them
        self._saved(PlanRecord.decode(entry.value), entry.revision or 0)

    def _saved(self, record: PlanRecord, rev: int) -> None:
        if self._mirror is None or not self._mirror.apply(record, rev):
            return
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:
                self.counters["listeners.errors"] += 1
                log.exception("plan listener failed")

    # --- schedule -----------------------------------------------------------------------

    async def _schedule_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.schedule_s)  # the period itself, not a sync wait
            try:
                await self._scan()
                if await self._elected():
                    await self._require_planning().plan(_round())
            except (NatsError, Conflict) as exc:
                log.warning("scheduled round skipped: %s", exc)

    async def _scan(self) -> None:
        """Take over open plans whose lease ended while nobody was watching."""
        assert self._mirror is not None and self._pool is not None
        for plan_id in self._mirror.open_plans():
            if plan_id not in self._pool.running:
                await self._pool.adopt(plan_id)

    async def _elected(self) -> bool:
        """One replica per period runs the scheduled round (compare-and-set on `round`)."""
        assert self._coord is not None
        period = now_ms() // int(self._cfg.schedule_s * 1000)
        entry = await kv.get(self._coord, "round")
        if entry is not None and int(entry.value or b"0") >= period:
            return False
        last = entry.revision or 0 if entry is not None else 0
        try:
            await self._coord.update("round", str(period).encode(), last=last)
        except APIError as exc:
            if kv.is_wrong_last(exc):
                return False
            raise
        return True

    def _require_mirror(self) -> PlanMirror:
        if self._mirror is None:
            raise RuntimeError("PlannerService.start() has not run")
        return self._mirror

    def _require_planning(self) -> Planning:
        if self._planning is None or self._closed:
            raise RuntimeError("PlannerService is not running")
        return self._planning


async def _ready(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Wait until `task` sets `event`; raise at once if the task dies first."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        async with timeout(REPLAY_TIMEOUT_S):
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not event.is_set():
        task.result()  # its exception, if it died of one
        raise RuntimeError(f"{task.get_name()} ended before it was ready")


def _round() -> Trigger:
    return Trigger("schedule", reason="scheduled planning round")
