"""`Stack`: every process of the demo, started in dependency order and stopped in reverse.

    hub nats-server → leaf nats-server → leaf node link → cloud orchestrator
    → edge daemon → observer → firmware-sim

The cloud comes before the edge because it creates the hub's streams the edge's uplink
forwards into; the simulated sensors come last, so the first reading already finds an
edge that acts on it. The cloud, the edge and the sensors are `baton cloud run`,
`baton edge run` and `baton sim run` child processes: the demo runs the same commands a
user would, on the configs shipped beside this module.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from shared.compat import timeout
from shared.demo.child import Child
from shared.demo.observer import Observer
from shared.demo.progress import Progress
from shared.demo.workdir import Workdir
from shared.lifecycle import Service
from shared.natsrun import LocalTopology

log = logging.getLogger(__name__)

CLOUD_READY_S: Final = 60.0  # first start on a slow machine: imports, FastAPI, planner
EDGE_READY_S: Final = 60.0  # onnxruntime and the shipped model load before ingest
SIM_FIRST_READING_S: Final = 30.0
SIM_STOP_GRACE_S: Final = 15.0  # the sim drains its buffers before it exits


def shipped(name: str) -> Path:
    """A file shipped beside this module (configs, the scenario)."""
    return Path(str(resources.files("shared.demo").joinpath(name)))


@dataclass(frozen=True, slots=True)
class StackSettings:
    gateway: str = "gw1"
    api_port: int = 8080  # 0: any free port
    seed: int = 7


class Stack(Service):
    """The running system; `aclose()` stops what started, in reverse, safe to call twice."""

    def __init__(self, work: Workdir, settings: StackSettings, progress: Progress) -> None:
        self.work = work
        self.settings = settings
        self.progress = progress
        # Ports are chosen here, so every URL is known before anything starts.
        self.topology = LocalTopology(settings.gateway, base_dir=work.nats)
        self.cloud = self._cloud()
        self.edge = self._edge()
        self.sim = self._sim()
        self.observer: Observer | None = None
        self.api_url = ""
        self.edge_metrics_url = ""

    def _cloud(self) -> Child:
        args = ["cloud", "run", "--config", str(shipped("cloud.toml"))]
        args += ["--nats", self.topology.hub.client_url, "--port", str(self.settings.api_port)]
        env = {"BATON_CLOUD_STATE_DIR": str(self.work.cloud)}
        return Child("cloud orchestrator", args, log_path=self.work.log("cloud"),
                     cwd=self.work.root, env=env)  # fmt: skip

    def _edge(self) -> Child:
        gateway = self.settings.gateway
        args = ["edge", "run", "--config", str(shipped("edge.toml"))]
        args += ["--gateway", gateway, "--nats", self.topology.leaf.client_url]
        # Port 0: the daemon picks a free one and logs it in its ready line.
        env = {"BATON_EDGE_STATE_DIR": str(self.work.edge), "BATON_EDGE_HTTP__PORT": "0"}
        return Child(f"edge daemon {gateway}", args, log_path=self.work.log("edge"),
                     cwd=self.work.root, env=env)  # fmt: skip

    def _sim(self) -> Child:
        args = ["sim", "run", "--broker", self.topology.leaf.mqtt_url or "", "--no-progress"]
        args += ["--scenario", str(shipped("scenario.toml")), "--seed", str(self.settings.seed)]
        args += ["--json", str(self.work.sim_summary)]
        return Child("firmware-sim", args, log_path=self.work.log("sim"), cwd=self.work.root)

    # -- start -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; on failure stop what started and raise."""
        try:
            await self._start_nats()
            await self._start_cloud()
            await self._start_edge()
            await self._start_sim()
        except BaseException:
            await self.aclose()
            raise

    async def _start_nats(self) -> None:
        hub, leaf = self.topology.hub, self.topology.leaf
        async with self.progress.step("hub nats-server") as step:
            await hub.start()
            step.detail = hub.client_url
        async with self.progress.step("leaf nats-server") as step:
            await leaf.start()
            step.detail = f"{leaf.mqtt_url} (sensors)"
        async with self.progress.step("leaf node link") as step:
            await self.topology.wait_linked()
            step.detail = "JetStream answers across it both ways"

    async def _start_cloud(self) -> None:
        async with self.progress.step("cloud orchestrator") as step:
            await self.cloud.start()
            match = await self.cloud.wait_for_line(r"API at (http://\S+)", CLOUD_READY_S)
            self.api_url = match.group(1)
            step.detail = self.api_url

    async def _start_edge(self) -> None:
        async with self.progress.step(self.edge.name) as step:
            await self.edge.start()
            match = await self.edge.wait_for_line(r" ready: .*http_port=(\d+)", EDGE_READY_S)
            self.edge_metrics_url = f"http://127.0.0.1:{match.group(1)}/metrics"
            step.detail = "rules + ONNX model bearing on bearing-1"

    async def _start_sim(self) -> None:
        hub, leaf = self.topology.hub, self.topology.leaf
        self.observer = Observer(leaf.client_url, hub.client_url, self.settings.gateway)
        await self.observer.start()
        async with self.progress.step("firmware-sim") as step:
            await self.sim.start()
            await self._first_reading()
            step.detail = "5 devices: pump-0, bearing-1, env-2..4 (scenario demo)"

    async def _first_reading(self) -> None:
        assert self.observer is not None
        seen = asyncio.create_task(self.observer.first_reading.wait(), name="demo-first-reading")
        exited = asyncio.create_task(self.sim.wait(), name="demo-sim-exit")
        try:
            async with timeout(SIM_FIRST_READING_S):
                await asyncio.wait({seen, exited}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.TimeoutError:
            raise self.sim.failure(f"sent nothing in {SIM_FIRST_READING_S:.0f} s") from None
        finally:
            for task in (seen, exited):
                task.cancel()
            await asyncio.gather(seen, exited, return_exceptions=True)
        if not self.observer.first_reading.is_set():
            raise self.sim.failure(f"exited with code {self.sim.returncode}")

    # -- while running -----------------------------------------------------------------

    def children(self) -> list[Child]:
        return [self.cloud, self.edge, self.sim]

    async def wait_failed(self) -> Child:
        """Until a child exits on its own (a crash: the demo stops them, not they)."""
        waits = {
            asyncio.create_task(child.wait(), name=f"demo-watch-{child.name}"): child
            for child in self.children()
            if child.running
        }
        if not waits:
            await asyncio.Future()  # nothing to watch: wait to be cancelled
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return waits[done.pop()]

    # -- stop ------------------------------------------------------------------------

    async def stop_sensors(self) -> None:
        """Stop the simulated sensors; they send what they buffered, then exit."""
        await self.sim.aclose(SIM_STOP_GRACE_S)

    async def aclose(self) -> None:
        """Stop in reverse start order: sensors, observer, edge, cloud, leaf, hub."""
        await self.sim.aclose(SIM_STOP_GRACE_S)
        if self.observer is not None:
            await self.observer.aclose()
        await self.edge.aclose()
        await self.cloud.aclose()
        await self.topology.aclose()

    def check_running(self) -> None:
        """`ComponentFailed` for the first child that is not running any more."""
        for child in self.children():
            if not child.running:
                raise child.failure(f"exited with code {child.returncode}")

    async def ensure_hub(self) -> None:
        """Bring the hub back (after an interrupted outage) so the edge can drain."""
        if not self.topology.hub.running:
            await self.topology.hub.start()
            await self.topology.wait_linked()
