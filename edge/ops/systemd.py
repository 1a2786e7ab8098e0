"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per state.

`baton-edge.service` is `Type=notify` with `WatchdogSec=`: the daemon says READY=1 once
it serves readings, WATCHDOG=1 from its event loop every half watchdog period (a loop
stuck longer gets the process restarted), and STOPPING=1 when it starts to drain.
Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket (sd_notify(3))
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("systemd notify %r failed: %s", state, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd asked for, or None when it asked for none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


async def keep_alive(interval_s: float) -> None:
    """WATCHDOG=1 every `interval_s` from the event loop, until cancelled."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)
