"""The simulator: devices on a schedule, their connections, network faults, and the summary.

    async with Simulator("mqtt://127.0.0.1:1883", "pump-overheat", devices=3, seed=7) as sim:
        summary = await sim.run()

Readings are spread evenly over each period (device `i` of `n` is due `i/n` of a period
after device 0), so a large fleet is a steady stream rather than a burst per tick; when
the process cannot keep up, it sends as fast as it can and the summary's rate says so.
Passing `broker=None` runs the same devices against an in-memory sender (`recorded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from random import Random
from types import TracebackType
from typing import Any, Final

from firmware_sim.broker import BrokerUrl
from firmware_sim.config import Scenario
from firmware_sim.device import Clock, DeviceState, SimDevice
from firmware_sim.errors import ScenarioError, SimError
from firmware_sim.faults import FaultPlan, NetworkEvent, plan_faults
from firmware_sim.fleet import build_fleet
from firmware_sim.link import Link
from firmware_sim.scenario import load_scenario
from firmware_sim.sender import MemorySender, Sent
from firmware_sim.summary import Counters, SimSummary
from shared.compat import timeout
from shared.messages import now_ms
from shared.subjects import ID_PATTERN, is_valid_id

log = logging.getLogger(__name__)

BATCH: Final = 500  # readings between two turns of the event loop (acks, commands, writes)
MIN_PAUSE_S: Final = 0.002  # shortest sleep when ahead of schedule: fewer, larger batches
DRAIN_TIMEOUT_S: Final = 10.0
KEEPALIVE_TICK_S: Final = 1.0
OPEN_CHUNK: Final = 256  # connections opened concurrently


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The scenario's defaults with the caller's overrides applied."""

    devices: int
    rate_hz: float
    duration_s: float | None  # None: until stop()
    qos: int
    speed: float
    seed: int
    connections: int  # MQTT connections; == devices means one per device

    @property
    def ticks(self) -> int | None:
        """Readings per device, or None when running until stopped."""
        if self.duration_s is None:
            return None
        return max(1, round(self.duration_s * self.rate_hz))


def make_plan(
    scenario: Scenario,
    *,
    devices: int | None = None,
    seed: int = 0,
    rate: float | None = None,
    duration: float | None = None,
    qos: int | None = None,
    speed: float | None = None,
    connections: int | None = None,
) -> RunPlan:
    """`duration` None keeps the scenario's; 0 runs until stopped."""
    count = devices if devices is not None else scenario.devices
    if count < 1:
        raise SimError("devices must be at least 1")
    span = (scenario.duration_s if duration is None else duration) or None
    return RunPlan(
        devices=count,
        rate_hz=rate if rate is not None else scenario.rate_hz,
        duration_s=span,
        qos=qos if qos is not None else scenario.network.qos,
        speed=speed if speed is not None else scenario.speed,
        seed=seed,
        connections=min(count, connections) if connections else count,
    )


def _plan_faults(
    scenario: Scenario, source: Scenario | str | Path, plan: RunPlan, sim_dt: float
) -> FaultPlan:
    try:
        return plan_faults(scenario, plan.devices, plan.seed, sim_dt)
    except ScenarioError as exc:
        label = scenario.name if isinstance(source, Scenario) else str(source)
        raise ScenarioError(exc.reason, file=exc.file or label, field=exc.field) from exc


def _check_options(
    scenario: Scenario, plan: RunPlan, id_prefix: str, logins: object | None
) -> None:
    longest = max((p.name for p in scenario.profile), key=len)
    if not is_valid_id(f"{id_prefix}{longest}-{plan.devices}"):
        raise SimError(f"--id-prefix {id_prefix!r} would make invalid device ids ({ID_PATTERN})")
    if logins is not None and plan.connections < plan.devices:
        raise SimError("per-device logins need one connection per device (no --connections)")


class Simulator:
    """Simulated device firmware over MQTT; an async context manager (see module doc)."""

    def __init__(
        self,
        broker: str | BrokerUrl | None,
        scenario: Scenario | str | Path,
        *,
        devices: int | None = None,
        seed: int = 0,
        rate: float | None = None,
        duration: float | None = None,
        qos: int | None = None,
        speed: float | None = None,
        connections: int | None = None,
        id_prefix: str = "",
        seq_start: int | None = None,
        logins: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.broker = BrokerUrl.parse(broker) if isinstance(broker, str) else broker
        self.plan = make_plan(
            self.scenario,
            devices=devices,
            seed=seed,
            rate=rate,
            duration=duration,
            qos=qos,
            speed=speed,
            connections=connections,
        )
        _check_options(self.scenario, self.plan, id_prefix, logins)
        self._logins = logins
        self.counters = Counters()
        self._memory = MemorySender(self.counters)
        self._devices = self._build(scenario, id_prefix, seq_start)
        self._by_id = {device.id: device for device in self._devices}
        self._links: list[Link] = []
        self._link_of: list[Link] = []
        self._stop = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None
        self._started: float | None = None
        self._elapsed: float | None = None
        self._closed = False

    def _build(
        self, source: Scenario | str | Path, id_prefix: str, seq_start: int | None
    ) -> list[SimDevice]:
        plan = self.plan
        sim_dt = plan.speed / plan.rate_hz
        faults = _plan_faults(self.scenario, source, plan, sim_dt)
        self._events = faults.network
        # Boot-based: a restarted simulator continues above its last run's numbers
        # (at under 1000 readings/s per device), so receivers' dedupe keeps working.
        start = now_ms()
        first_seq = seq_start if seq_start is not None else start * 1000
        self._clock = Clock(sim_dt, 1000.0 / plan.rate_hz, start, first_seq)
        return build_fleet(
            self.scenario,
            devices=plan.devices,
            seed=plan.seed,
            clock=self._clock,
            faults=faults,
            counters=self.counters,
            sender=self._memory,
            id_prefix=id_prefix,
        )

    # --- what tests and the demo look at -------------------------------------------

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    @property
    def recorded(self) -> list[Sent]:
        """With `broker=None`: every payload the devices sent, in order."""
        return self._memory.sent

    def state(self, device: str) -> DeviceState:
        return self._by_id[device].state()

    def failure_ts_ms(self, device: str) -> int | None:
        """When the device's bearing fails, on the readings' `ts_ms` clock (lead-time
        scoring); None when its profile schedules no failure."""
        dev = self._by_id[device]
        profile_failure = dev.plant.bearing.cfg.failure_s if dev.plant.bearing else None
        if profile_failure is None:
            return None
        ticks = profile_failure / dev.clock.sim_dt
        return dev.clock.start_ms + int(ticks * dev.clock.period_ms)

    def summary(self) -> SimSummary:
        """The counts so far (final once `run()` returned)."""
        elapsed = self._elapsed
        if elapsed is None:
            loop_time = asyncio.get_running_loop().time() if self._started else 0.0
            elapsed = loop_time - self._started if self._started else 0.0
        plan = self.plan
        return SimSummary.of(self.counters, devices=plan.devices, qos=plan.qos, elapsed_s=elapsed)

    def stop(self) -> None:
        """Ask `run()` to finish: stop taking readings, drain, return the summary."""
        self._stop.set()

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        try:
            if self.broker is not None:
                self._make_links(self.broker)
                await self._open_links()
            self._keepalive = asyncio.create_task(self._keep_alive(), name="sim-keepalive")
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _make_links(self, broker: BrokerUrl) -> None:
        plan, network = self.plan, self.scenario.network
        shared = plan.connections < plan.devices
        for k in range(plan.connections):
            members = self._devices[k :: plan.connections]
            client_id = f"sim-{os.getpid()}-{k}" if shared else members[0].id
            jitter = Random(plan.seed * 7_919 + k)  # reconnect timing, apart from physics
            link = Link(
                client_id,
                members,
                broker=broker,
                network=network,
                qos=plan.qos,
                counters=self.counters,
                jitter=jitter,
                login=self._logins(client_id) if self._logins is not None else None,
            )
            self._links.append(link)
        self._link_of = [self._links[i % plan.connections] for i in range(plan.devices)]

    async def _open_links(self) -> None:
        # The first alone: an unreachable broker is one clear error, not thousands.
        await self._links[0].open()
        rest = self._links[1:]
        for start in range(0, len(rest), OPEN_CHUNK):
            chunk = rest[start : start + OPEN_CHUNK]
            results = await asyncio.gather(*(link.open() for link in chunk), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_TICK_S)  # a periodic timer, not a wait for state
            for link in self._links:
                link.misc()

    async def aclose(self) -> None:
        """Stop, then close every connection (reverse order). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        for link in reversed(self._links):
            await link.aclose()

    # --- running ---------------------------------------------------------------------

    async def run(self) -> SimSummary:
        """Send readings until the planned duration is over or `stop()`, then drain."""
        if self._started is not None:
            raise SimError("run() can be called once per Simulator")
        loop = asyncio.get_running_loop()
        self._restart_clock()
        self._started = loop.time()
        try:
            await self._schedule(self.plan.ticks)
            await self._drain()
        finally:
            self._elapsed = loop.time() - self._started
        return self.summary()

    def _restart_clock(self) -> None:
        """Timestamps start now, not when the simulator was built (connecting takes time)."""
        self._clock = replace(self._clock, start_ms=now_ms())
        for device in self._devices:
            device.clock = self._clock

    async def _schedule(self, ticks: int | None) -> None:
        devices, loop = self._devices, asyncio.get_running_loop()
        n = len(devices)
        slot = 1.0 / (self.plan.rate_hz * n)  # wall seconds between two readings
        end = ticks * n if ticks is not None else math.inf
        t0, k = loop.time(), 0
        while k < end and not self._stop.is_set():
            due = int((loop.time() - t0) / slot) + 1
            upto = int(min(due, k + BATCH, end))
            if upto <= k:
                await self._pause(t0 + k * slot - loop.time())
                continue
            for j in range(k, upto):
                if j % n == 0:
                    self._fire_network(j // n)
                devices[j % n].tick(j // n)
            k = upto
            await asyncio.sleep(0)  # acks, commands and socket writes run between batches

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            async with timeout(max(delay, MIN_PAUSE_S)):
                await self._stop.wait()

    def _fire_network(self, tick: int) -> None:
        while self._events and self._events[0].tick <= tick:
            event, self._events = self._events[0], self._events[1:]
            self._apply(event)

    def _apply(self, event: NetworkEvent) -> None:
        links = {id(self._link_of[i]): self._link_of[i] for i in event.devices if self._link_of}
        log.info("fault %s at tick %d on %d connection(s)", event.kind, event.tick, len(links))
        for link in links.values():
            link.drop(event.wall_s if event.kind == "outage" else 0.0)

    async def _drain(self) -> None:
        if not self._links:
            return
        try:
            async with timeout(DRAIN_TIMEOUT_S):
                for link in self._links:
                    await link.drain()
        except asyncio.TimeoutError:
            log.warning(
                "gave up waiting for acks and buffered readings after %s s", DRAIN_TIMEOUT_S
            )


def run_simulation(
    broker: str | BrokerUrl | None, scenario: Scenario | str | Path, **options: Any
) -> SimSummary:
    """Blocking convenience: connect, run to the end of the planned duration, close.
    `options` are `Simulator`'s keyword arguments."""

    async def main() -> SimSummary:
        async with Simulator(broker, scenario, **options) as sim:
            return await sim.run()

    return asyncio.run(main())
