"""What happens to the running system on the demo's clock: the flaky uplink and the
operator's session.

- Operator session: an agent session on the gateway, handed to the cloud and back
  (`shared.demo.session`).
- Flaky uplink: the hub nats-server is stopped for a few seconds, then started again on
  the same store. The gateway keeps taking readings into its leaf (store and forward),
  the cloud reconnects, and the summary later shows that the backlog arrived whole.

The two never overlap: the outage waits for the operator session to end (on a loaded
machine the session can run late), up to `outage_wait_s`, and a session never starts
while the hub is down. A handoff needs the hub (its snapshot, the lease's flip), and
so does everything that reports one, so an outage in the middle of the session would
make it fail in ways the session is not there to show. The outage is also short enough
for the session's lease (10 s, renewed every third of it) to outlast it: the session
stays with the gateway, where the operator left it.

All run as named tasks in one `TaskGroup`; `run()` is cancelled when the demo stops,
and a stopped hub is always started again on the way out, so the edge can drain.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Final

from shared.compat import TaskGroup, timeout
from shared.demo.probe import edge_counts, put_json
from shared.demo.progress import Progress
from shared.demo.session import SessionResult, run_session
from shared.demo.stack import Stack
from shared.errors import BatonError

log = logging.getLogger(__name__)

# After the sensors start: the bearing model has fired (~20 s) and the cloud planned by
# then, and a 60 s run still has half a minute to show the backlog arriving.
OUTAGE_AT_S: Final = 30.0
# A session's holder stops acting 9 s after its last renewal (every 3.3 s), so it bears
# about 5.7 s without the hub; stopping, starting and relinking the hub add a second or
# two to this.
OUTAGE_S: Final = 3.0
# How long the outage waits past its time for the operator session to end.
OUTAGE_WAIT_S: Final = 10.0
SESSION_AT_S: Final = 16.0  # after pump-0's first overheat: something to ask about
DESIRED_AT_S: Final = 12.0
# Long enough for the whole schedule plus time to see the backlog arrive.
FULL_RUN_S: Final = OUTAGE_AT_S + OUTAGE_S + 15.0
# What the operator asks of pump-0's twin (keys are `<action>.<param>`, shared.actions):
# run at 80 % load. The dashboard shows the drift, then the device's ack closing it.
DESIRED_DEVICE: Final = "pump-0"
DESIRED_STATE: Final = {"set_load.load": 0.8}


@dataclass(frozen=True, slots=True)
class Schedule:
    outage_at_s: float = OUTAGE_AT_S
    outage_s: float = OUTAGE_S
    outage_wait_s: float = OUTAGE_WAIT_S
    session_at_s: float = SESSION_AT_S
    desired_at_s: float = DESIRED_AT_S

    @classmethod
    def fitting(cls, duration_s: float | None) -> Schedule:
        """The default schedule, squeezed into a short run so everything still happens."""
        if duration_s is None or duration_s >= FULL_RUN_S:
            return cls()
        outage_s = max(1.0, min(OUTAGE_S, duration_s / 10))
        return cls(
            outage_at_s=duration_s * 0.4,
            outage_s=outage_s,
            outage_wait_s=min(OUTAGE_WAIT_S, duration_s * 0.2),
            session_at_s=min(SESSION_AT_S, duration_s * 0.1),
            desired_at_s=min(DESIRED_AT_S, duration_s * 0.2),
        )


@dataclass
class TimelineResult:
    outage_s: float | None = None  # how long the hub was really down
    backlog_peak: int | None = None  # readings waiting at the leaf when it came back
    desired_version: int | None = None  # what the operator set on DESIRED_DEVICE
    session: SessionResult = field(default_factory=SessionResult.not_run)


class Timeline:
    def __init__(self, stack: Stack, progress: Progress, schedule: Schedule) -> None:
        self._stack = stack
        self._progress = progress
        self._schedule = schedule
        self.result = TimelineResult()
        # Held by the operator session, and by the outage while the hub is down.
        self._hub_in_use = asyncio.Lock()

    async def run(self) -> None:
        """Run every step on its schedule; returns when all are done."""
        async with TaskGroup() as group:
            group.create_task(self._outage(), name="demo-flaky-uplink")
            group.create_task(self._session(), name="demo-operator-session")
            group.create_task(self._desired(), name="demo-desired-state")

    async def _outage(self) -> None:
        schedule = self._schedule
        await asyncio.sleep(schedule.outage_at_s)  # the demo's clock, not a wait for state
        alone = await self._session_over()
        try:
            await self._hub_down(schedule.outage_s)
        finally:
            if alone:
                self._hub_in_use.release()
        self._progress.event(
            f"flaky uplink: hub back after {self.result.outage_s:.1f} s; "
            f"{self.result.backlog_peak or 0} messages waited at the leaf"
        )

    async def _session_over(self) -> bool:
        """Until the operator session is not running (bounded); True when the outage
        now holds the hub to itself."""
        try:
            async with timeout(self._schedule.outage_wait_s):
                await self._hub_in_use.acquire()
        except asyncio.TimeoutError:
            self._progress.event("flaky uplink: the operator session still runs; "
                                 "the hub goes down anyway")  # fmt: skip
            return False
        return True

    async def _hub_down(self, outage_s: float) -> None:
        hub = self._stack.topology.hub
        loop = asyncio.get_running_loop()
        self._progress.event(f"flaky uplink: hub down for {outage_s:.0f} s")
        await hub.stop()
        down_at = loop.time()
        try:
            await asyncio.sleep(outage_s)
            self.result.backlog_peak = await self._backlog()
        finally:
            # Also when cancelled: the edge can drain only into a running hub.
            await self._stack.ensure_hub()
            self.result.outage_s = round(loop.time() - down_at, 2)

    async def _backlog(self) -> int | None:
        try:
            return (await edge_counts(self._stack.edge_metrics_url)).backlog
        except BatonError as exc:
            log.info("edge metrics not readable: %s", exc)
            return None

    async def _desired(self) -> None:
        await asyncio.sleep(self._schedule.desired_at_s)  # the demo's clock
        gw = self._stack.settings.gateway
        url = f"{self._stack.api_url}/api/devices/{gw}/{DESIRED_DEVICE}/desired"
        try:
            answer = await put_json(url, DESIRED_STATE)
        except BatonError as exc:
            self._progress.event(f"desired state not set on {DESIRED_DEVICE}: {exc}")
            return
        self.result.desired_version = int(answer["version"])
        self._progress.event(
            f"operator: desired state v{answer['version']} on {DESIRED_DEVICE} {DESIRED_STATE}"
        )

    async def _session(self) -> None:
        await asyncio.sleep(self._schedule.session_at_s)  # the demo's clock
        async with self._hub_in_use:  # not while the hub is down
            self.result.session = await run_session(self._stack, self._progress)
