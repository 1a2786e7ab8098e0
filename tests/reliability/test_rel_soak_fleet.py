"""Issue 10 item 12 (full form only): the whole system under the `fleet` scenario for an
hour, with a fault every minute.

The system is the demo's (shared/demo/stack.py): hub and leaf nats-servers, the cloud
orchestrator, the edge daemon and 30 simulated devices, each the `baton` command a user
runs. The faults take turns: kill -9 of the edge daemon (restarted), kill -9 of the leaf
nats-server (the gateway's power cut), the hub stopped for a while (an uplink outage).

At the end the sensors stop and the backlog drains; then:

- lost: readings the sensors had acknowledged (QoS 1 PUBACKs, less the scenario's
  deliberate re-sends) that never reached FLEET, and readings in FLEET the cloud did not
  apply; duplicated: readings the cloud applied twice. All must be 0.
- the cloud orchestrator and firmware-sim run the whole time: their RSS may grow less
  than 5 % from the end of the first fault cycle to the end, and their open file
  descriptors must come back to where they were.

BATON_SOAK_S sets the length (default 3600 s), BATON_SOAK_FAULT_EVERY_S the fault period
(default 60 s).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from relkit_figures import Figures
from relkit_soak import ProcSample, SoakStack, child_pid

from shared.demo.probe import get_json
from shared.demo.progress import Progress
from shared.demo.stack import StackSettings
from shared.demo.workdir import Workdir
from shared.errors import TransportError
from shared.natsrun.monitor import poll_until

SOAK_S = float(os.environ.get("BATON_SOAK_S", "3600"))
FAULT_EVERY_S = float(os.environ.get("BATON_SOAK_FAULT_EVERY_S", "60"))
HUB_OUTAGE_S = 15.0
RECOVERY_S = 120.0  # a fault's effects are gone well within this
DRAIN_S = 180.0
RSS_GROWTH_MAX = 0.05
FD_SLACK = 8  # sockets come and go with reconnects; a leak grows without bound

pytestmark = [
    pytest.mark.slow,
    # Its own bound: the soak's length plus start, drain and stop (the conftest's full
    # form bound is one hour, the soak's default length).
    pytest.mark.timeout(int(SOAK_S + 3 * DRAIN_S + 600)),
]


@pytest.fixture
async def stack(tmp_path: Path, reliability_full: bool) -> AsyncIterator[SoakStack]:
    if not reliability_full:
        pytest.skip("the soak runs in the full form only (--reliability-full)")
    work = Workdir(tmp_path / "soak")
    work.prepare()
    with (tmp_path / "progress.log").open("w") as out:
        running = SoakStack(work, StackSettings(api_port=0, seed=11), Progress(out))
        await running.start()
        try:
            yield running
        finally:
            await running.aclose()


async def _forwarding(stack: SoakStack, *, since: float) -> float:
    """Seconds from `since` (the fault's start) until FLEET grows again: while any of
    these faults lasts nothing reaches the hub, so this is how long the pipeline stood."""
    observer = stack.observer
    assert observer is not None
    before = observer.tally.hub_count

    async def moved() -> bool:
        return observer.tally.hub_count > before

    await poll_until(moved, timeout_s=RECOVERY_S)
    return asyncio.get_running_loop().time() - since


def _faults(stack: SoakStack) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    return [
        ("edge_kill9", stack.kill_edge),
        ("leaf_kill9", stack.kill_leaf),
        ("hub_outage", lambda: stack.hub_outage(HUB_OUTAGE_S)),
    ]


def _sample(stack: SoakStack) -> dict[str, ProcSample]:
    pids = {"cloud": child_pid(stack.cloud), "sim": child_pid(stack.sim)}
    return {name: ProcSample.of(pid) for name, pid in pids.items() if pid is not None}


async def _applied(stack: SoakStack) -> int:
    """Readings in the cloud's twins, once it has caught up with FLEET."""
    assert stack.observer is not None
    target = stack.observer.tally.hub_count
    applied = 0

    async def caught_up() -> bool:
        nonlocal applied
        try:
            fleet = await get_json(f"{stack.api_url}/api/fleet")
        except TransportError:
            return False
        applied = sum(int(d["readings"]) for d in fleet["devices"])
        return applied >= target

    await poll_until(caught_up, timeout_s=DRAIN_S)
    return applied


async def test_fleet_soak_with_a_fault_every_minute(stack: SoakStack, figures: Figures) -> None:
    figures.record(soak_s=SOAK_S, fault_every_s=FAULT_EVERY_S)
    loop = asyncio.get_running_loop()
    end = loop.time() + SOAK_S
    faults = _faults(stack)
    done: Counter[str] = Counter()
    recovery: dict[str, list[float]] = {name: [] for name, _ in faults}
    baseline: dict[str, ProcSample] = {}
    cycle = 0
    while loop.time() < end:
        began = loop.time()
        name, inject = faults[cycle % len(faults)]
        await inject()
        recovery[name].append(await _forwarding(stack, since=began))
        done[name] += 1
        cycle += 1
        if cycle == len(faults):
            baseline = _sample(stack)  # warm: every fault seen once
        # The schedule: one fault a minute (a period of the test, not a wait for state).
        await asyncio.sleep(max(0.0, min(began + FAULT_EVERY_S, end) - loop.time()))
    final = _sample(stack)

    assert stack.observer is not None
    await stack.ensure_hub()
    await stack.stop_sensors()
    delivered = await stack.observer.wait_delivered(DRAIN_S)
    applied = await _applied(stack)
    sim = json.loads(stack.work.sim_summary.read_text())
    tally = stack.observer.tally
    acked_distinct = int(sim["acked"]) - int(sim["duplicates"])
    lost = max(0, acked_distinct - tally.hub_count) + max(0, tally.hub_count - applied)
    figures.record(
        faults=sum(done.values()),
        **{f"faults_{name}": n for name, n in sorted(done.items())},
        sent=int(sim["sent"]),
        acknowledged=int(sim["acked"]),
        resent_on_purpose=int(sim["duplicates"]),
        at_hub=tally.hub_count,
        applied=applied,
        missing_at_hub=tally.missing(),
        lost=lost,
        duplicated=max(0, applied - tally.hub_count),
        drained=delivered,
    )
    for name, seconds in recovery.items():
        figures.samples(f"recovery_{name}_s", seconds)
    growth = _growth(figures, baseline or final, final)
    assert delivered and tally.missing() == 0
    assert lost == 0 and applied == tally.hub_count
    assert all(g < RSS_GROWTH_MAX for g in growth.values()), growth
    for name, sample in final.items():
        assert sample.fds <= (baseline or final)[name].fds + FD_SLACK, (name, sample)


def _growth(
    figures: Figures, baseline: dict[str, ProcSample], final: dict[str, ProcSample]
) -> dict[str, float]:
    growth: dict[str, float] = {}
    for name, end in final.items():
        start = baseline[name]
        growth[name] = (end.rss_kib - start.rss_kib) / start.rss_kib
        values: dict[str, Any] = {
            f"{name}_rss_start_kib": start.rss_kib,
            f"{name}_rss_end_kib": end.rss_kib,
            f"{name}_rss_growth_pct": round(100 * growth[name], 2),
            f"{name}_fds_start": start.fds,
            f"{name}_fds_end": end.fds,
        }
        figures.record(**values)
    return growth
