"""`baton sim run` as a child process: simulated pumps publishing over MQTT, its summary back.

Load mode: many devices share a few connections, QoS 0 (a reading the leaf accepted is
captured by its UPLINK stream; QoS 1 would measure the MQTT listener's own JetStream
session store instead of the gateway). `qos=1` is for a measure of the leaf itself (the
ingest benchmark's store ceiling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.bench.harness.child import Child, python_module

CONNECTIONS = 4
MAX_RATE_HZ = 1000  # `baton sim run --rate` per device


@dataclass(frozen=True, slots=True)
class SimRun:
    sent: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def sim_argv(
    broker: str,
    summary: Path,
    *,
    devices: int,
    rate_hz: float,
    duration_s: float,
    speed: float = 30.0,
    scenario: str = "pump-overheat",
    qos: int = 0,
) -> list[str]:
    return python_module(
        "shared.cli.main",
        "sim",
        "run",
        "--broker",
        broker,
        "--scenario",
        scenario,
        "--devices",
        str(devices),
        "--rate",
        f"{rate_hz:g}",
        "--duration",
        f"{duration_s:g}",
        "--connections",
        str(min(CONNECTIONS, devices)),
        "--qos",
        str(qos),
        "--speed",
        f"{speed:g}",
        "--no-progress",
        "--json",
        str(summary),
    )


class Sim:
    """Start with `await sim.start()`, then `await sim.finish()` for its counts."""

    def __init__(
        self,
        folder: Path,
        broker: str,
        *,
        devices: int,
        rate_hz: float,
        duration_s: float,
        qos: int = 0,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.summary = folder / "sim.json"
        self.summary.unlink(missing_ok=True)
        argv = sim_argv(
            broker, self.summary, devices=devices, rate_hz=rate_hz, duration_s=duration_s, qos=qos
        )
        self.child = Child(argv, folder / "sim.log")
        self.budget_s = duration_s * 10 + 60

    async def start(self) -> None:
        await self.child.start()

    async def finish(self) -> SimRun:
        code = await self.child.wait(self.budget_s)
        if code != 0 or not self.summary.exists():
            raise self.child.error(f"exited with code {code}")
        doc = json.loads(self.summary.read_text(encoding="utf-8"))
        return SimRun(int(doc["sent"]), float(doc["elapsed_s"]))

    async def stop(self) -> None:
        await self.child.stop()
