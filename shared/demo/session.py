"""The demo's scripted operator session: `baton chat` on the gateway, handed to the cloud
and back.

The operator (`shared.demo.operator`) types into `baton chat`, the command a person
would use, one line at a time, each after the chat answered the one before: a question
the gateway's local agent answers from its rules and data, `/handoff cloud`, a question
about the fleet, `/handoff edge`, one more question, `/quit`. A /handoff that did not
move the session is looked at again and retried, as a person would, and the summary
says so in the chat's words. The session lives in the edge daemon (the chat is its
client; the session starts once the daemon says it hosts sessions), so when the chat
exits the session stays with `edge:<gw>`, and the API can still hand it over. Every
event goes to the session's log on the hub, where the dashboard shows it streaming.
Where the handoff protocol is not installed the chat says so and the session stays on
the gateway; the summary then says the handoffs were skipped, and why, in the chat's
own words.

Each handoff's outcome and latency come from the cloud (`/api/dashboard`, which reads
the session log); where the dashboard is not served, from the owner the chat reports.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shared.compat import timeout
from shared.demo.child import Child
from shared.demo.errors import ComponentFailed
from shared.demo.operator import STATUS, UNAVAILABLE, Operator
from shared.demo.probe import get_json, get_text
from shared.demo.progress import Progress
from shared.errors import TransportError
from shared.natsrun.monitor import poll_until

if TYPE_CHECKING:
    from shared.demo.stack import Stack

log = logging.getLogger(__name__)

SCRIPT: Final = (
    "why did the fan on pump-0 turn on?",
    "/handoff cloud",
    "which devices in the fleet need attention?",
    "/handoff edge",
    "what is the vibration of bearing-1 doing?",
)
# A handoff takes milliseconds; a cold cloud model, or a retried handoff, longer.
SESSION_TIMEOUT_S: Final = 90.0
RESULTS_TIMEOUT_S: Final = 10.0  # the session log reaching the cloud's view of it
# The edge daemon attaches to the hub's leases in the background after it is ready.
HOSTED_TIMEOUT_S: Final = 30.0
_HOSTED: Final = re.compile(r"^baton_edge_sessions_hosted 1(\.0)?$", re.MULTILINE)


@dataclass
class SessionResult:
    """What the operator session did; `skipped` says why the handoffs did not happen."""

    session: str | None = None
    owners: list[str] = field(default_factory=list)  # as the chat reported them, in order
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    kept_by: str | None = None  # who holds the session after the chat exited
    failures: list[str] = field(default_factory=list)  # /handoffs that did not move it

    @classmethod
    def not_run(cls) -> SessionResult:
        return cls(skipped="the demo stopped before the session's turn")

    @property
    def completed(self) -> int:
        return sum(1 for h in self.handoffs if h.get("ok"))

    @property
    def failed(self) -> int:
        """Handoffs that did not complete: aborted ones the cloud saw, or the attempts
        the chat reported as failed, whichever says more."""
        return max(len(self.handoffs) - self.completed, len(self.failures))


def handoff_available() -> bool:
    """Whether this installation has the edge's side of the handoff that `baton chat` uses."""
    if importlib.util.find_spec("edge.handoff") is None:
        return False
    return hasattr(importlib.import_module("edge.handoff"), "chat_handoff")


async def run_session(stack: Stack, progress: Progress) -> SessionResult:
    hosted = await _daemon_hosts_sessions(stack)
    if not hosted:
        progress.event(f"the edge daemon hosts no sessions after {HOSTED_TIMEOUT_S:.0f} s; "
                       "baton chat runs the session itself")  # fmt: skip
    progress.event(f"operator session: {len(SCRIPT)} lines typed into baton chat")
    operator = Operator(lambda: _chat(stack), SCRIPT, hosted=hosted)
    try:
        async with timeout(SESSION_TIMEOUT_S):
            await operator.run()
    except asyncio.TimeoutError:
        progress.event(f"operator session did not finish in {SESSION_TIMEOUT_S:.0f} s")
    except ComponentFailed as exc:
        progress.event(f"operator session cut short: {exc}")
    result = _read(operator.transcript.lines)
    result.failures = operator.transcript.failures
    for why in result.failures:
        progress.event(f"operator: a handoff did not go through: {why}")
    if result.skipped is None and result.session is not None:
        result.handoffs = await _handoffs(stack, result)
    if result.session is not None:
        result.kept_by = await _owner(stack, result.session)
    progress.event(_describe(result))
    return result


async def _daemon_hosts_sessions(stack: Stack) -> bool:
    """Until the edge daemon's metrics say it hosts sessions (bounded)."""

    async def hosted() -> bool:
        try:
            return _HOSTED.search(await get_text(stack.edge_metrics_url)) is not None
        except TransportError:
            return False

    try:
        await poll_until(hosted, timeout_s=HOSTED_TIMEOUT_S)
    except asyncio.TimeoutError:
        return False
    return True


async def _owner(stack: Stack, session: str) -> str | None:
    """Who holds the session's lease, as the cloud's API lists it."""
    try:
        listed = await get_json(f"{stack.api_url}/api/sessions/{session}")
    except TransportError:
        return None
    owner = listed.get("owner") if isinstance(listed, dict) else None
    return str(owner) if owner else None


def _chat(stack: Stack) -> Child:
    from shared.demo.stack import shipped  # the stack imports this module

    work, gateway = stack.work, stack.settings.gateway
    args = ["chat", "--gateway", gateway, "--config", str(shipped("edge.toml")),
            "--nats", stack.topology.leaf.client_url]  # fmt: skip
    return Child(
        "operator session", args, log_path=work.log("session"), cwd=work.root,
        env={"BATON_EDGE_STATE_DIR": str(work.edge)}, interactive=True,
    )  # fmt: skip


def _read(lines: list[str]) -> SessionResult:
    """The session id, its owners and any refusal, from what the chat printed."""
    result = SessionResult()
    for line in lines:
        if (status := STATUS.search(line)) is not None:
            result.session = status.group(1)
            if not result.owners or result.owners[-1] != status.group(2):
                result.owners.append(status.group(2))
        if (refused := UNAVAILABLE.search(line)) is not None and result.skipped is None:
            result.skipped = f"handoff not available ({refused.group(1)})"
    if result.session is None and result.skipped is None:
        result.skipped = "baton chat did not start a session (see logs/session.log)"
    return result


async def _handoffs(stack: Stack, result: SessionResult) -> list[dict[str, Any]]:
    """The session's handoffs as the cloud saw them, once every change of owner the chat
    reported is a completed one there (bounded)."""
    found: list[dict[str, Any]] = []
    moves = len(result.owners) - 1

    async def ended() -> bool:
        nonlocal found
        try:
            snapshot = await get_json(f"{stack.api_url}/api/dashboard")
        except TransportError:
            return False
        found = [h for h in snapshot["handoffs"]
                 if h["session"] == result.session and h["state"] in ("completed", "aborted")]  # fmt: skip
        return sum(1 for h in found if h["state"] == "completed") >= moves

    try:
        await poll_until(ended, timeout_s=RESULTS_TIMEOUT_S)
    except asyncio.TimeoutError:
        if not found:
            return _from_owners(result.owners)
    return [{"to": h["to"], "ok": h["state"] == "completed", "latency_ms": h["latency_ms"],
             "steps": h["steps"]} for h in found]  # fmt: skip


def _from_owners(owners: list[str]) -> list[dict[str, Any]]:
    """Each change of owner the chat reported is a completed handoff (latency unknown)."""
    return [{"to": to, "ok": True, "latency_ms": None} for to in owners[1:]]


def _describe(result: SessionResult) -> str:
    where = " → ".join(result.owners) or "?"
    head = f"operator session {result.session or '?'}: owner {where}"
    if result.kept_by:
        head += f", kept by {result.kept_by}"
    if result.skipped:
        return f"{head}; {result.skipped}"
    times = ", ".join(
        f"{h['to']} {h['latency_ms']:.0f} ms" if h.get("latency_ms") is not None else h["to"]
        for h in result.handoffs
    )
    return f"{head}; handoffs: {times or 'none seen'}"
