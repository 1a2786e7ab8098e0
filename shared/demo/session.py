"""The demo's scripted operator session: opened on the gateway, handed to the cloud and back.

It needs the handoff protocol wired into the edge daemon and the cloud orchestrator
(`baton handoff`); where that is not installed the step reports, plainly, that it was
skipped and why, and the summary says the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from shared.demo.progress import Progress

if TYPE_CHECKING:
    from shared.demo.stack import Stack

log = logging.getLogger(__name__)

HANDOFF_COMMAND = "handoff"


@dataclass
class SessionResult:
    """What the operator session did; `skipped` says why it did not run."""

    handoffs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None

    @classmethod
    def not_run(cls) -> SessionResult:
        return cls(skipped="the demo stopped before the session's turn")

    @property
    def completed(self) -> int:
        return sum(1 for h in self.handoffs if h.get("ok"))


def handoff_available() -> bool:
    """Whether this installation has the handoff protocol wired in (`baton handoff`)."""
    return any(ep.name == HANDOFF_COMMAND for ep in entry_points(group="baton.commands"))


async def run_session(stack: Stack, progress: Progress) -> SessionResult:
    if not handoff_available():
        reason = "handoff not available (no `baton handoff` in this installation)"
        progress.event(f"operator session skipped: {reason}")
        return SessionResult(skipped=reason)
    # The protocol is installed but the demo's script for it is not written against it
    # yet: say so rather than pretend.
    reason = "handoff installed, but the demo's session script does not drive it yet"
    progress.event(f"operator session skipped: {reason}")
    return SessionResult(skipped=reason)
