"""What the demo prints while it works: one line per component with the time it took.

baton demo: state in .baton/demo (delete it when done)
  hub nats-server       0.08 s  nats://127.0.0.1:40121
  leaf nats-server      0.07 s  mqtt://127.0.0.1:41877 (sensors)
  ...
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TextIO

NAME_WIDTH = 22


@dataclass
class Step:
    """The line being timed; set `detail` to say what came up (a URL, a count)."""

    name: str
    detail: str = ""


class Progress:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._t0 = time.monotonic()

    def line(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def event(self, text: str) -> None:
        """Something that happened while running, stamped with the time since start."""
        self.line(f"  [{time.monotonic() - self._t0:6.1f} s] {text}")

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[Step]:
        """Time one component's start; print its line when it is up (or did not come up)."""
        step = Step(name)
        began = time.monotonic()
        try:
            yield step
        except BaseException:
            self.line(f"  {name:<{NAME_WIDTH}} failed after {time.monotonic() - began:.2f} s")
            raise
        took = time.monotonic() - began
        self.line(f"  {name:<{NAME_WIDTH}} {took:5.2f} s  {step.detail}".rstrip())
