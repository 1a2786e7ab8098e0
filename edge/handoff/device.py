"""What the gateway knows about itself: SoC temperature, battery, whether the hub is up.

DeviceState          the seam: `signals` now, and `changed`, an event set on a change
MemoryDeviceState    the in-memory twin (tests, or a daemon that learns it elsewhere)
SysfsDeviceState     Linux: /sys/class/thermal and /sys/class/power_supply, read every
                     `poll_s`; the uplink flag from `uplink()` at the same time (the
                     daemon's `UplinkStats.hub_connected`), or from `set_uplink`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from shared.session.policy import DeviceSignals
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)


class DeviceState(Protocol):
    @property
    def signals(self) -> DeviceSignals: ...

    def changed(self) -> asyncio.Event:
        """An event set at the next change of `signals`."""
        ...


class MemoryDeviceState:
    def __init__(self, signals: DeviceSignals | None = None) -> None:
        self._signals = signals or DeviceSignals()
        self._changed = asyncio.Event()

    @property
    def signals(self) -> DeviceSignals:
        return self._signals

    def changed(self) -> asyncio.Event:
        return self._changed

    def update(self, **fields: float | bool | None) -> None:
        new = replace(self._signals, **fields)  # type: ignore[arg-type]
        if new != self._signals:
            self._signals = new
            self._changed.set()
            self._changed = asyncio.Event()

    def set_uplink(self, up: bool) -> None:
        self.update(uplink=up)


UplinkProbe = Callable[[], "bool | None"]


class SysfsDeviceState(MemoryDeviceState):
    """Reads the files every `poll_s` (a sensor, not a poll for an event we could await).

    `uplink` says whether the hub is reachable (None: unknown, the flag is left as is).
    The daemon's uplink keeps that flag itself (its PubAcks, a probe when idle) and
    announces no change, so it is read here with the files: a memory read, no I/O."""

    def __init__(
        self,
        thermal: Path | None,
        battery: Path | None,
        poll_s: float,
        *,
        uplink: UplinkProbe | None = None,
    ) -> None:
        super().__init__()
        self._thermal = thermal
        self._battery = battery
        self._poll_s = poll_s
        self._uplink = uplink
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SysfsDeviceState:
        self._read()
        self._task = asyncio.create_task(self._run(), name="device-state")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            self._read()

    def _read(self) -> None:
        temp = _number(self._thermal)
        up = self._uplink() if self._uplink is not None else None
        self.update(
            temp_c=None if temp is None else temp / 1000.0,  # sysfs thermal: millidegrees
            battery_pct=_number(self._battery),
            **({} if up is None else {"uplink": up}),
        )


def _number(path: Path | None) -> float | None:
    if path is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        return float(path.read_text().strip())
    return None
