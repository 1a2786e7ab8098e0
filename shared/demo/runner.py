"""`run_demo()`: start the system, let it run, stop it in order, and sum up what it did.

    options = DemoOptions(duration_s=60, browser=False)
    summary, code = await run_demo(options, sys.stdout)

The run ends at `duration_s`, on `stop` (the CLI sets it on SIGINT / SIGTERM), or when a
component exits by itself. Stopping is a drain, in this order: the timeline (a stopped
hub is started again), the sensors (they send what they buffered), the uplink's backlog
(until every reading the leaf accepted is in FLEET), the edge (its last decisions and
acks go up), the cloud once it has applied every reading, then the leaf and the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import threading
import webbrowser
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from shared.demo.errors import DemoError, MissingPiece
from shared.demo.observer import Tally
from shared.demo.probe import EdgeCounts, edge_counts, get_json
from shared.demo.progress import Progress
from shared.demo.stack import Stack, StackSettings
from shared.demo.summary import (
    DemoSummary,
    Handoffs,
    Plans,
    Quarantine,
    Readings,
    Reflex,
    Twin,
    Uplink,
    percentile,
)
from shared.demo.timeline import DESIRED_DEVICE, Schedule, Timeline, TimelineResult
from shared.demo.workdir import DEFAULT_DIR, Workdir
from shared.errors import TransportError
from shared.messages import now_ms
from shared.natsrun import find_nats_server
from shared.natsrun.monitor import poll_until
from shared.natsrun.ports import is_free

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S: Final = 60.0  # the backlog of a hub outage drains in seconds
# A twin write that failed during the outage is redelivered after the ingest ack wait
# (`cloud.toml` of the demo: 10 s); the cloud has caught up well within this.
APPLIED_TIMEOUT_S: Final = 40.0
STATUS_EVERY_S: Final = 15.0
# (module, what to install) for each piece the demo runs.
_NEEDS: Final = (
    ("fastapi", "the cloud extra: pip install 'baton[cloud]'"),
    ("uvicorn", "the cloud extra: pip install 'baton[cloud]'"),
    ("onnxruntime", "onnxruntime (a base dependency): pip install baton"),
    ("edge", "the baton package with its edge daemon"),
    ("cloud", "the baton package with its cloud orchestrator"),
    ("firmware_sim", "the baton package with firmware-sim"),
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float | None = None  # None: until stopped
    browser: bool = True
    summary_path: Path | None = None
    dir: Path = DEFAULT_DIR
    port: int = 8080  # the dashboard and API; 0 = any free port
    gateway: str = "gw1"
    seed: int = 7


def check_installed(port: int) -> None:
    """`MissingPiece` / `DemoError` before anything starts, with what to do about it."""
    for module, what in _NEEDS:
        if importlib.util.find_spec(module) is None:
            raise MissingPiece(f"baton demo needs {what} (no module {module!r})")
    find_nats_server()  # BinaryNotFound says how to get it
    if port and not is_free(port):
        raise DemoError(f"port {port} is in use; pass --port 0 for any free port")


async def run_demo(
    options: DemoOptions, out: TextIO, stop: asyncio.Event | None = None
) -> tuple[DemoSummary, int]:
    """Run the demo; (summary, exit code). Raises `DemoError` when it cannot start."""
    check_installed(options.port)
    work = Workdir(options.dir.resolve())
    work.prepare()
    progress = Progress(out)
    progress.line(f"baton demo: state in {work.root} (delete it when done)")
    settings = StackSettings(gateway=options.gateway, api_port=options.port, seed=options.seed)
    stack = Stack(work, settings, progress)
    loop = asyncio.get_running_loop()
    await stack.start()
    started = loop.time()
    try:
        _announce(stack, progress, options)
        timeline = Timeline(stack, progress, Schedule.fitting(options.duration_s))
        crashed = await _run(stack, timeline, progress, stop or asyncio.Event(), options)
        summary = await _wind_down(stack, timeline.result, progress, loop.time() - started)
    finally:
        await stack.aclose()
    summary = _with_exit_codes(summary, stack)
    code = 1 if crashed or not summary.nothing_lost else 0
    return summary, code


def _announce(stack: Stack, progress: Progress, options: DemoOptions) -> None:
    url = f"{stack.api_url}/"
    progress.line(f"dashboard: {url}")
    until = f"for {options.duration_s:.0f} s" if options.duration_s else "until Ctrl-C"
    progress.line(f"running {until}; logs in {stack.work.logs}")
    if options.browser:
        # A daemon thread, not a task: some browsers block `open` until they exit, and
        # the demo must not wait for that, nor keep the process alive for it.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


async def _run(
    stack: Stack,
    timeline: Timeline,
    progress: Progress,
    stop: asyncio.Event,
    options: DemoOptions,
) -> bool:
    """Until the duration, `stop`, or a crashed component; True on a crash."""
    crashed: list[str] = []

    async def watch() -> None:
        child = await stack.wait_failed()
        crashed.append(child.name)
        progress.event(f"{child.name} exited with code {child.returncode}; see {child.log_path}")
        stop.set()

    async def clock() -> None:
        if options.duration_s is not None:
            await asyncio.sleep(options.duration_s)  # the run's length, not a wait for state
            stop.set()

    tasks = {
        "demo-timeline": timeline.run,
        "demo-watch": watch,
        "demo-clock": clock,
        "demo-status": lambda: _status(stack, progress),
    }
    await _until(stop, tasks)
    return bool(crashed)


async def _until(stop: asyncio.Event, tasks: dict[str, Callable[[], Any]]) -> None:
    """Run `tasks` until `stop` is set, then cancel and await each. A task that fails
    sets `stop` too, and its error is raised once everything is stopped."""

    def stop_on_error(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            stop.set()

    running = [asyncio.create_task(factory(), name=name) for name, factory in tasks.items()]
    for task in running:
        task.add_done_callback(stop_on_error)
    try:
        await stop.wait()
    finally:
        for task in running:
            task.cancel()
        outcomes = await asyncio.gather(*running, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome


async def _status(stack: Stack, progress: Progress) -> None:
    """A line now and then, so a terminal shows the system working."""
    while True:
        await asyncio.sleep(STATUS_EVERY_S)  # a periodic report, not a wait for state
        if stack.observer is not None:
            t = stack.observer.tally
            progress.event(
                f"readings at the leaf {t.leaf_count}, at the hub {t.hub_count}; "
                f"reflex actions {sum(t.actions.values())}; bad payloads {t.leaf_bad.total()}"
            )


# -- stopping and counting --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collected:
    """Everything the summary is made of, gathered while stopping."""

    tally: Tally
    edge: EdgeCounts
    devices: list[dict[str, Any]]  # the cloud's twins (`/api/fleet`)
    plans: list[dict[str, Any]]
    timeline: TimelineResult
    delivered: bool
    elapsed_s: float


async def _wind_down(
    stack: Stack, result: TimelineResult, progress: Progress, elapsed_s: float
) -> DemoSummary:
    progress.line("stopping: sensors, then the uplink's backlog, the edge, the cloud, NATS")
    observer = stack.observer
    assert observer is not None
    await stack.ensure_hub()
    # Stopping the sensors takes them offline, which the planner rightly plans for; the
    # summary counts the plans the run itself caused.
    sensors_stopped_ms = now_ms()
    await stack.stop_sensors()
    delivered = await observer.wait_delivered(DELIVERY_TIMEOUT_S)
    edge = await _edge_counts(stack)
    await stack.edge.aclose()
    devices = await _cloud_caught_up(stack, observer.tally.hub_count)
    plans = [p for p in await _plans(stack) if int(p.get("created_ms", 0)) <= sensors_stopped_ms]
    collected = Collected(observer.tally, edge, devices, plans, result, delivered, elapsed_s)
    return _summary(stack, collected)


async def _edge_counts(stack: Stack) -> EdgeCounts:
    try:
        return await edge_counts(stack.edge_metrics_url)
    except TransportError as exc:
        log.warning("edge metrics not readable: %s", exc)
        return EdgeCounts()


async def _cloud_caught_up(stack: Stack, hub_count: int) -> list[dict[str, Any]]:
    """The cloud's twins once they hold every reading in FLEET (or at the deadline)."""
    devices: list[dict[str, Any]] = []

    async def caught_up() -> bool:
        nonlocal devices
        try:
            devices = (await get_json(f"{stack.api_url}/api/fleet"))["devices"]
        except TransportError:
            return False
        return _applied(devices) >= hub_count

    with contextlib.suppress(asyncio.TimeoutError):
        await poll_until(caught_up, timeout_s=APPLIED_TIMEOUT_S)
    return devices


def _applied(devices: list[dict[str, Any]]) -> int:
    return sum(int(d["readings"]) for d in devices)


async def _plans(stack: Stack) -> list[dict[str, Any]]:
    try:
        plans: list[dict[str, Any]] = await get_json(f"{stack.api_url}/api/plans?limit=500")
    except (TransportError, ValueError) as exc:
        log.warning("plans not readable: %s", exc)
        return []
    return plans


def _summary(stack: Stack, c: Collected) -> DemoSummary:
    sim = _sim_summary(stack.work.sim_summary)
    tally, session = c.tally, c.timeline.session
    return DemoSummary(
        duration_s=round(c.elapsed_s, 1),
        devices=int(sim.get("devices", len(tally.leaf))),
        readings=_readings(tally, int(sim.get("sent", 0)), c.edge, _applied(c.devices)),
        reflex=Reflex(
            actions=sum(tally.actions.values()),
            by_name=dict(tally.actions),
            latency_p50_us=percentile(tally.latencies_us, 0.5),
            latency_p99_us=percentile(tally.latencies_us, 0.99),
            latency_max_us=max(tally.latencies_us, default=None),
            device_acks=dict(tally.acks),
        ),
        quarantine=Quarantine(
            total=sum(c.edge.quarantined.values()),
            by_reason=dict(c.edge.quarantined),
            bad_payloads_sent=tally.leaf_bad.total(),
        ),
        uplink=Uplink(c.timeline.outage_s, c.timeline.backlog_peak, c.delivered),
        twin=_twin(c.devices, c.timeline.desired_version),
        plans=_plan_counts(c.plans),
        handoffs=Handoffs(
            session=session.session,
            owners=session.owners,
            completed=session.completed,
            failed=session.failed,
            latency_ms=[float(h["latency_ms"]) for h in session.handoffs if h.get("latency_ms")],
            skipped=session.skipped,
            failures=session.failures,
            kept_by=session.kept_by,
        ),
    )


def _readings(tally: Tally, sent: int, edge: EdgeCounts, applied: int) -> Readings:
    return Readings(
        sensors_sent=sent,
        leaf_accepted=tally.leaf_count,
        edge_processed=edge.readings_ok,
        hub_received=tally.hub_count,
        cloud_applied=applied,
        missing_at_hub=tally.missing(),
        applied_twice=max(0, applied - tally.hub_count),
    )


def _twin(devices: list[dict[str, Any]], desired_version: int | None) -> Twin:
    found = next((d for d in devices if d["device"] == DESIRED_DEVICE), {})
    return Twin(
        device=DESIRED_DEVICE,
        desired_version=desired_version,
        reported_version=int(found.get("reported_version", 0)),
        convergence_ms=found.get("convergence_ms"),
    )


def _plan_counts(plans: list[dict[str, Any]]) -> Plans:
    return Plans(
        total=len(plans),
        by_status=dict(Counter(str(p.get("status")) for p in plans)),
        steps=sum(len(p.get("steps", [])) for p in plans),
        triggers=dict(Counter(str(p.get("trigger")) for p in plans)),
    )


def _sim_summary(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data


def _with_exit_codes(summary: DemoSummary, stack: Stack) -> DemoSummary:
    codes = {child.name: child.returncode for child in stack.children()}
    return dataclasses.replace(summary, components=codes)


def write_summary(summary: DemoSummary, path: Path) -> None:
    try:
        path.write_text(summary.to_json() + "\n", encoding="utf-8")
    except OSError as exc:
        raise DemoError(f"cannot write the summary to {path}: {exc}") from exc
