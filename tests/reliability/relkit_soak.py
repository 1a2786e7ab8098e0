"""Helpers of the soak: the demo's stack (shared/demo: hub, leaf, cloud, edge, sensors as
the `baton` commands a user runs) with the `fleet` scenario, faults to inject into it, and
what the kernel says about each process (RSS, open file descriptors).

    SoakStack     `shared.demo.stack.Stack` running `baton sim run --scenario fleet` with
                  no end, plus the faults: kill -9 of the edge daemon (and its restart),
                  kill -9 of the leaf nats-server (the gateway's power cut), the hub
                  stopped for a while (an uplink outage)
    ProcSample    RSS and open fds of one pid, from /proc
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shared.demo.child import Child
from shared.demo.stack import Stack

SIM_DEVICES: Final = 30  # the fleet scenario's own count
SIM_SEED: Final = 11


class SoakStack(Stack):
    """The demo's stack with the fleet scenario, run until stopped."""

    def _sim(self) -> Child:
        args = ["sim", "run", "--broker", self.topology.leaf.mqtt_url or "", "--no-progress"]
        args += ["--scenario", "fleet", "--duration", "0", "--seed", str(SIM_SEED)]
        args += ["--json", str(self.work.sim_summary)]
        return Child("firmware-sim", args, log_path=self.work.log("sim"), cwd=self.work.root)

    async def kill_edge(self) -> None:
        """kill -9 the edge daemon, then start it again as systemd would; returns once it
        says it is ready."""
        pid = child_pid(self.edge)
        assert pid is not None, "the edge daemon is not running"
        os.kill(pid, signal.SIGKILL)
        await self.edge.wait()
        await self.edge.aclose()  # reaps it and ends its log copy
        self.edge = self._edge()
        await self._start_edge()

    async def kill_leaf(self) -> None:
        """The gateway's power cut: kill -9 the leaf nats-server, start it on the same store."""
        await self.topology.leaf.kill()
        await self.topology.leaf.start()
        await self.topology.wait_linked()

    async def hub_outage(self, seconds: float) -> None:
        """The uplink is down for `seconds` (the hub stopped), then back."""
        await self.topology.hub.stop()
        # The outage's length is the fault itself, not a wait for some state.
        await asyncio.sleep(seconds)
        await self.topology.hub.start()
        await self.topology.wait_linked()


def child_pid(child: Child) -> int | None:
    """The pid of a running `Child` (from /proc: Child keeps its process to itself)."""
    wanted = list(child.args)
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == me and [part.decode() for part in cmdline if part] == wanted:
            return int(stat.parent.name)
    return None


@dataclass(frozen=True, slots=True)
class ProcSample:
    rss_kib: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> ProcSample:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return cls(rss_kib=int(rss.split()[1]), fds=len(os.listdir(f"/proc/{pid}/fd")))
