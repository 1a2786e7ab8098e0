"""How long this process has been running, for the "ready" log line."""

from __future__ import annotations

import os
import time


def process_uptime_s() -> float | None:
    """Seconds since the kernel started this process (Linux `/proc`), or None elsewhere.

    Measured from the exec, not from our first line of Python, so the interpreter's own
    start and every import count: that is what an operator waits for.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        # Field 22 (starttime, clock ticks after boot) counts from after "(comm)".
        start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / ticks
