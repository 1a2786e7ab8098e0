"""`Orchestrator`: one cloud replica, an async context manager that owns every task.

    async with Orchestrator(load_cloud_config("cloud.toml")) as orch:
        print(orch.url)              # the HTTP API
        await orch.wait_closed()     # until aclose() or a fatal loop error

Start-up: connect to the hub → `ensure_hub` (streams, KV) → read model → background
loops in one TaskGroup (KV twin watch, FLEET projector, ingest workers, reconcile) →
planner (optional) → HTTP API. Once the twin watch has loaded the bucket the replica
is ready: its API answers for the whole fleet.

`aclose()` drains in reverse: stop fetching and finish the batch in hand (its acks go
out), stop reconciling and planning, end event streams and the API, stop projecting,
drain the NATS connection (flushes the last acks), close SQLite. `abort()` is the
crash a test needs: tasks cancelled mid-batch, connection dropped without drain.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from cloud.api.app import create_app
from cloud.api.deps import ApiDeps
from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.api.server import ApiServer
from cloud.config import CloudConfig
from cloud.dashboard import Dashboard
from cloud.ingest.consumer import IngestConsumer
from cloud.readmodel.db import ReadModel
from cloud.readmodel.projector import Projector
from cloud.sessions import SessionManager, start_sessions
from cloud.twins.desired import DesiredService
from cloud.twins.reconcile import Reconciler
from cloud.twins.store import TwinStore
from cloud.twins.view import FleetView
from shared import streams, subjects
from shared.compat import TaskGroup, timeout
from shared.config import redact_url
from shared.errors import TransportError
from shared.lifecycle import Service

if TYPE_CHECKING:
    from cloud.planner import PlannerService

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0
READY_TIMEOUT_S: Final = 30.0  # loading a big twins bucket on start
DRAIN_TIMEOUT_S: Final = 10.0  # a batch in hand: fold, CAS, ack
CANCEL_RETRY_S: Final = 0.1


class Orchestrator(Service):
    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.replica = config.replica_name
        self.metrics = CloudMetrics(self.replica)
        self.bus = EventBus()
        self._nc: NATS | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._api: ApiServer | None = None
        self._dashboard: Dashboard | None = None
        self._sessions: SessionManager | None = None
        self._planner: PlannerService | None = None
        self._undo_plans: Callable[[], None] = lambda: None
        self._readmodel: ReadModel | None = None
        self._closed = False
        self.failed: BaseException | None = None

    # -- what callers use ------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of this replica's HTTP API."""
        if self._api is None:
            raise RuntimeError("orchestrator not started")
        return self._api.url

    @property
    def readmodel(self) -> ReadModel:
        if self._readmodel is None:
            raise RuntimeError("orchestrator not started")
        return self._readmodel

    @property
    def fleet(self) -> FleetView:
        return self.readmodel

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until `predicate()` is true of this replica's read model."""
        await self.projector.wait_for(predicate, timeout_s)

    async def wait_closed(self) -> None:
        """Until the background loops end: `aclose()`, or a fatal error (see `failed`)."""
        if self._supervisor is not None:
            await asyncio.wait({self._supervisor})

    # -- start -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create what is missing on the hub, start every loop and the API.

        On any failure what was started is closed again (as by `abort`) and it raises.
        """
        try:
            await self._start()
        except BaseException:
            await self.abort()
            raise

    async def _start(self) -> None:
        cfg = self.config
        self._nc = await self._connect()
        js = self._nc.jetstream(timeout=CONNECT_TIMEOUT_S)
        await streams.ensure_hub(js, cfg.replicas)
        kv = await js.key_value(subjects.TWINS_BUCKET)
        self._readmodel = ReadModel(
            cfg.readmodel_path, retention_minutes=cfg.readmodel.retention_minutes
        )
        self._wire(js, kv)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"cloud-{self.replica}")
        async with timeout(READY_TIMEOUT_S):
            await self.projector.twins_loaded.wait()
        self._planner = await self._start_planner(js)
        assert self._nc is not None
        # Accepts sessions handed over by gateways (needs the leases bucket: after ensure_hub).
        self._sessions = await start_sessions(self._nc, self.replica)
        app = create_app(self._api_deps())
        assert self._nc is not None
        self._dashboard = await Dashboard.attach(app, self._nc)
        self._api = ApiServer(
            app,
            cfg.http.host,
            cfg.http.port,
            graceful_shutdown_s=cfg.http.graceful_shutdown_s,
        )
        await self._api.start()
        log.info("cloud replica %s ready, API at %s", self.replica, self._api.url)

    async def _connect(self) -> NATS:
        try:
            return await nats.connect(
                self.config.nats_url,
                name=f"baton-cloud-{self.replica}",
                connect_timeout=CONNECT_TIMEOUT_S,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1.0,
                error_cb=self._on_nats_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                nkeys_seed=str(self.config.nkey_file) if self.config.nkey_file else None,
            )
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
            raise TransportError(
                f"cannot reach the hub at {redact_url(self.config.nats_url)}: {exc!r}"
            ) from exc

    def _wire(self, js: JetStreamContext, kv: Any) -> None:
        cfg = self.config
        self.store = TwinStore(kv, on_conflict=self.metrics.cas_conflicts.inc)
        self.desired = DesiredService(js, self.store, self.metrics)
        self.projector = Projector(
            js, kv, self.readmodel, self.bus, self.metrics,
            backfill_minutes=cfg.readmodel.backfill_minutes,
        )  # fmt: skip
        self.reconciler = Reconciler(
            self.readmodel, self.store, self.desired, self.metrics,
            interval_s=cfg.reconcile_interval_s, silent_after_s=cfg.silent_after_s,
            resend_after_s=cfg.resend_after_s,
        )  # fmt: skip
        self.ingest = IngestConsumer(
            js, self.store, self.metrics, cfg.ingest,
            silent_after_s=cfg.silent_after_s, on_came_online=self.reconciler.wake,
        )  # fmt: skip

    async def _supervise(self) -> None:
        loops = {
            "twins": self.projector.run_twins,
            "projector": self.projector.run_fleet,
            "reconcile": self.reconciler.run,
        }
        for worker in range(self.config.ingest.workers):
            loops[f"ingest-{worker}"] = functools.partial(self.ingest.run, worker)
        try:
            async with TaskGroup() as group:
                for name, loop in loops.items():
                    self._tasks[name] = group.create_task(
                        self._until_closed(name, loop), name=f"{self.replica}-{name}"
                    )
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                # A loop died of something it could not handle: this replica stops and
                # its work moves to the others (the durable consumer redelivers).
                log.critical("cloud replica %s failed: %r", self.replica, exc, exc_info=exc)
                self.failed = exc
            raise

    async def _until_closed(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        await loop()
        # Each loop runs until aclose() stops it: one that ends by itself has failed
        # silently (a watch that stopped, a fetch loop that gave up), which must not go
        # unnoticed any more than an exception.
        if not self._closed:
            raise RuntimeError(f"loop {name} of replica {self.replica} ended by itself")

    async def _start_planner(self, js: JetStreamContext) -> PlannerService | None:
        if not self.config.planner.enabled:
            return None
        # Imported here: a replica with the planner off never loads it (or llama.cpp).
        from cloud.planner import PlannerService

        assert self._nc is not None
        cfg = self.config
        planner = PlannerService(
            self._nc, js, cfg.planner, self.readmodel, self.replica,
            db_path=cfg.state_file("plans"), replicas=cfg.replicas,
            # A planner loop that fails is restarted; the replica counts each failure.
            on_loop_error=lambda name: self.metrics.loop_errors.labels(f"planner:{name}").inc(),
        )  # fmt: skip
        await planner.start()
        self._undo_plans = planner.subscribe(
            lambda record: self.bus.publish("plan", record.plan.model_dump(mode="json"))
        )
        return planner

    def _api_deps(self) -> ApiDeps:
        return ApiDeps(
            replica=self.replica,
            readmodel=self.readmodel,
            desired=self.desired,
            bus=self.bus,
            metrics=self.metrics,
            health=self._health,
            planner=self._planner,
            sessions=self._sessions,
            max_body_bytes=self.config.http.max_body_bytes,
        )

    def _health(self) -> dict[str, Any]:
        return {
            "nats": self._nc is not None and self._nc.is_connected,
            "twins_loaded": self.projector.twins_loaded.is_set(),
            "loops": self.failed is None and not self._closed,
            "planner": "off" if not self.config.planner.enabled else self._planner is not None,
        }

    # -- NATS connection callbacks ------------------------------------------------------

    async def _on_nats_error(self, exc: Exception) -> None:
        log.warning("cloud %s: NATS error: %r", self.replica, exc)

    async def _on_disconnected(self) -> None:
        if self._closed:
            return  # our own drain or abort
        log.warning("cloud %s: disconnected from the hub; reconnecting", self.replica)

    async def _on_reconnected(self) -> None:
        log.info("cloud %s: reconnected to the hub", self.replica)

    # -- stop ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Drain and close everything, in reverse order of start. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.ingest.stop()
        await self._finish(self._tasks_named("ingest-"), DRAIN_TIMEOUT_S)
        await self._finish(self._tasks_named("reconcile"), 0)
        await self._stop_front()
        await self._finish(self._tasks_named("twins", "projector"), 0)
        await self._finish([self._supervisor] if self._supervisor else [], 0)
        await self._close_nats(drain=True)
        self._close_readmodel()

    async def abort(self) -> None:
        """Stop as a crash would: no drain, no acks for work in hand. For tests."""
        self._closed = True
        # The loops first, directly: a TaskGroup cancels its children only once.
        await self._finish(list(self._tasks.values()), 0)
        await self._finish([self._supervisor] if self._supervisor else [], 0)
        await self._stop_front()
        await self._close_nats(drain=False)
        self._close_readmodel()

    def _tasks_named(self, *prefixes: str) -> list[asyncio.Task[None]]:
        return [task for name, task in self._tasks.items() if name.startswith(prefixes)]

    async def _finish(self, tasks: list[asyncio.Task[None]], grace_s: float) -> None:
        """Give `tasks` `grace_s` to end by themselves, then cancel; await them all."""
        pending = {task for task in tasks if not task.done()}
        if pending and grace_s > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        # One cancel() is not always enough: nats-py swallows a CancelledError that lands
        # in a publish's flush (`Client._send_command`), and the loop carries on. Repeat
        # until each task has really ended.
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_RETRY_S)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_front(self) -> None:
        dashboard, self._dashboard = self._dashboard, None
        if dashboard is not None:
            await dashboard.aclose()
        planner, self._planner = self._planner, None
        self._undo_plans()
        if planner is not None:
            await planner.aclose()
        sessions, self._sessions = self._sessions, None
        if sessions is not None:
            await sessions.aclose()
        self.bus.close()  # ends SSE streams, so the API's graceful stop is quick
        if self._api is not None:
            await self._api.aclose()

    async def _close_nats(self, *, drain: bool) -> None:
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        try:
            await (nc.drain() if drain else nc.close())
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            log.warning("cloud %s: NATS close: %r", self.replica, exc)
            await nc.close()

    def _close_readmodel(self) -> None:
        readmodel, self._readmodel = self._readmodel, None
        if readmodel is not None:
            readmodel.close()
