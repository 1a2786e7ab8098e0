"""The terminal side of `baton chat`: read lines, run them, print the event stream.

Content chunks print as they arrive (`agent> ...`), tool calls and results as short
indented lines, a suggestion to hand off as a hint, and before each prompt a status line
with the session, who owns it and its epoch. Commands:

    /handoff cloud|edge    move the session (needs `edge.handoff`; says so when absent)
    /status                the status line again
    /help                  these commands
    /quit                  leave (also end of input)

The loop talks to a `Conversation`: the session in the gateway's daemon when one hosts
sessions (`edge.handoff.daemon_session`: the chat is its client), else one this process
runs itself (`LocalConversation`, with `edge.handoff.chat_handoff` for /handoff).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, Protocol

from shared.agent import AgentSession
from shared.errors import BatonError
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentSwitch,
    ContentChunk,
    HandoffRequest,
    ToolExecution,
    ToolResult,
)
from shared.messages.agent import Side

Echo = Callable[[str], None]

HELP = "Commands: /handoff cloud|edge, /status, /help, /quit. Anything else is a question."


class Conversation(Protocol):
    """One chat session, wherever it runs."""

    id: str
    model: str
    movable: bool  # whether /handoff can work here

    def where(self) -> tuple[Side, int]:
        """Who owns the session (its side) and the lease's epoch."""
        ...

    def ask(self, text: str) -> AsyncIterator[AgentEventBase]: ...

    async def move(self, to: Side) -> None:
        """Hand the session over; a `BatonError` says why it did not move."""
        ...

    async def aclose(self) -> None: ...


class ChatHandoff(Protocol):
    """What `edge.handoff.chat_handoff(nc, gateway)` returns, when that module exists."""

    async def move(self, session: AgentSession, to: Side) -> None:
        """Hand the session over; on success `session.owner`/`epoch` show the new lease."""
        ...

    def ask_remote(self, session: AgentSession, text: str) -> AsyncIterator[AgentEventBase]:
        """The remote owner's events for one question (while the cloud owns the session)."""
        ...

    async def aclose(self) -> None: ...


class LocalConversation:
    """A session this process runs (no daemon hosts it): asked directly while the edge
    owns it, through `handoff` while the cloud does."""

    def __init__(self, session: AgentSession, handoff: ChatHandoff | None) -> None:
        self.session = session
        self.id = session.id
        self.model = session.backend.name
        self.movable = handoff is not None
        self._handoff = handoff

    def where(self) -> tuple[Side, int]:
        return self.session.owner, self.session.epoch

    def ask(self, text: str) -> AsyncIterator[AgentEventBase]:
        if self.session.owner != "edge" and self._handoff is not None:
            return self._handoff.ask_remote(self.session, text)
        return self.session.ask(text)

    async def move(self, to: Side) -> None:
        if self._handoff is None:
            raise BatonError("handoff is not available here")
        await self._handoff.move(self.session, to)

    async def aclose(self) -> None:
        if self._handoff is not None:
            await self._handoff.aclose()


def handoff_module() -> Any | None:
    """`edge.handoff`, or None when this build has none."""
    try:
        return importlib.import_module("edge.handoff")
    except ImportError:
        return None


def find_handoff(nc: Any, gateway: str) -> ChatHandoff | None:
    """The chat's own handoff hook (no daemon), or None when this build has none."""
    module = handoff_module()
    factory = getattr(module, "chat_handoff", None)
    return factory(nc, gateway) if factory is not None and nc is not None else None


class Printer:
    def __init__(self, echo: Echo) -> None:
        self._echo = echo
        self._mid_line = False

    def event(self, event: AgentEventBase) -> None:
        if isinstance(event, ContentChunk):
            self._text(event.text)
        elif isinstance(event, ToolExecution):
            args = " ".join(f"{k}={v}" for k, v in event.args.items())
            self._line(f"  · {event.tool} {args}".rstrip())
        elif isinstance(event, ToolResult):
            self._line(f"  {'✓' if event.ok else '✗'} {event.tool}")
        elif isinstance(event, HandoffRequest):
            self._line(f"  (suggests handing off to the {event.to}: {event.reason}; "
                       f"type /handoff {event.to})")  # fmt: skip
        elif isinstance(event, AgentSwitch):
            self._line(f"  (now answering: {event.to_agent}, was {event.from_agent})")
        elif isinstance(event, AgentError):
            self._line(f"error ({event.code}): {event.message}")
        elif isinstance(event, AgentComplete):
            self._end()

    def _text(self, text: str) -> None:
        if not self._mid_line:
            self._echo("agent> ")
        self._echo(text)
        self._mid_line = not text.endswith("\n")

    def note(self, line: str) -> None:
        """A line of its own, after any answer in progress."""
        self._line(line)

    def _line(self, line: str) -> None:
        self._end()
        self._echo(line + "\n")

    def _end(self) -> None:
        if self._mid_line:
            self._echo("\n")
            self._mid_line = False


def status_line(conversation: Conversation, hub: str) -> str:
    owner, epoch = conversation.where()
    return (
        f"[session {conversation.id} · owner {owner} · epoch {epoch} · "
        f"model {conversation.model} · hub {hub}]"
    )


class ChatLoop:
    def __init__(
        self,
        conversation: Conversation,
        *,
        stdin: IO[str],
        echo: Echo,
        hub: Callable[[], str],
    ) -> None:
        self.conversation = conversation
        self._stdin = stdin
        self._echo = echo
        self._printer = Printer(echo)
        self._hub = hub

    async def run(self) -> None:
        self._status()
        while (line := await self._read()) is not None:
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return
            await self._one(text)

    async def _one(self, text: str) -> None:
        if text.startswith("/"):
            await self._command(text)
            return
        await self._answer(text)
        self._status()

    async def _answer(self, text: str) -> None:
        try:
            async for event in self.conversation.ask(text):
                self._printer.event(event)
        except BatonError as exc:  # the owner did not take the question (moving, gone)
            self._printer.note(f"not answered: {exc}")

    async def _command(self, text: str) -> None:
        name, _, arg = text.partition(" ")
        if name == "/handoff":
            await self._move(arg.strip())
        elif name == "/status":
            self._status()
        else:
            self._echo(HELP + "\n")

    async def _move(self, to: str) -> None:
        if to not in ("cloud", "edge"):
            self._echo("usage: /handoff cloud|edge\n")
            return
        if not self.conversation.movable:
            owner, _ = self.conversation.where()
            self._echo("Handoff is not available here (this build has no edge.handoff, or "
                       "there is no connection to the leaf); the session stays on the "
                       f"{owner}.\n")  # fmt: skip
            return
        try:
            await self.conversation.move("cloud" if to == "cloud" else "edge")
        except BatonError as exc:
            self._echo(f"handoff failed: {exc}\n")
        self._status()

    def _status(self) -> None:
        self._echo(status_line(self.conversation, self._hub()) + "\n")

    async def _read(self) -> str | None:
        self._echo("you> ")
        line = await asyncio.get_running_loop().run_in_executor(None, self._stdin.readline)
        if not line:
            self._echo("\n")
            return None
        return line
