"""One turn of a session: the question, tool rounds, framed text, the completion.

agent_start
[agent_switch]           the first turn of a new agent (a handoff changed the model)
[handoff_request]        a fleet question, or a context the local model cannot hold
content_chunk*           framed text (`Framer`)
(tool_execution tool_result content_chunk*)*   at most `max_tool_rounds`
agent_complete | error
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING

from pydantic import JsonValue

from shared.agent.backend import TextDelta, ToolCall
from shared.agent.context import Window, fit
from shared.agent.errors import AgentFailure, ContextFull
from shared.agent.framing import Framer
from shared.agent.intents import needs_fleet
from shared.agent.prompt import format_call, tools_instructions
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentStart,
    AgentSwitch,
    ChatMessage,
    ContentChunk,
    HandoffRequest,
    ToolExecution,
    ToolResult,
)

if TYPE_CHECKING:
    from shared.agent.session import AgentSession

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are baton's agent for IoT gateway {gw} ({side}). Answer briefly from the data; "
    "use a tool whenever the answer needs readings, rules, the twin or an actuation. "
    "Never invent a value."
)


class Turn:
    def __init__(self, session: AgentSession, task: dict[str, JsonValue]) -> None:
        self.session = session
        self.task = task
        self.start_index = _index(task)
        self._framer = Framer(
            session.config.chunk_chars,
            session.config.chunk_ms / 1000,
            asyncio.get_running_loop().time,
        )
        self._text: list[str] = []
        self._system_text: str | None = None

    @classmethod
    def start(cls, session: AgentSession, question: str) -> Turn:
        task: dict[str, JsonValue] = {
            "kind": "ask",
            "text": question,
            "index": len(session.messages),
        }
        # At most one question is pending: the newest. One still pending here failed
        # with a retryable error (a context too big for this model), its `error` event
        # told the user, and they asked on. Kept, it would travel in every snapshot and a
        # later owner's `resume()` would restart it, cutting every exchange after it out
        # of the conversation (its "half turn" is everything after its index).
        for stale in session.pending:
            log.info("session %s: %r superseded by a newer question", session.id,
                     _quote(stale), extra={"session": session.id})  # fmt: skip
        session.pending.clear()
        session.messages.append(ChatMessage(role="user", content=question))
        session.pending.append(task)
        return cls(session, task)

    @classmethod
    def restart(cls, session: AgentSession, task: dict[str, JsonValue]) -> Turn:
        """Run a pending question again, dropping the half turn an old owner left.

        `task` must be the conversation's newest question (`superseded` says when it is
        not): everything after its message is that question's unfinished turn.
        """
        if superseded(session.messages, task):
            raise ValueError(f"pending {_quote(task)} has later questions after it")
        del session.messages[_index(task) + 1 :]
        return cls(session, task)

    async def run(self) -> AsyncGenerator[AgentEventBase, None]:
        s = self.session
        yield await s.emit(AgentStart, model=s.backend.name)
        async with aclosing(self._preamble()) as preamble:
            async for event in preamble:
                yield event
        try:
            async with aclosing(self._rounds()) as rounds:
                async for event in rounds:
                    yield event
        except AgentFailure as exc:
            failure: AgentFailure | None = exc
        except Exception as exc:  # a backend's bug: the stream still ends with an event
            log.exception("session %s: turn failed", s.id, extra={"session": s.id})
            failure = AgentFailure(f"internal error: {exc!r}")
        else:
            failure = None
        if failure is None:
            yield await self._complete()
            return
        async with aclosing(self._failed(failure)) as failed:
            async for event in failed:
                yield event

    async def _preamble(self) -> AsyncGenerator[AgentEventBase, None]:
        s = self.session
        previous = s.memory.get("agent")
        if isinstance(previous, str) and previous != s.agent:
            yield await s.emit(
                AgentSwitch, from_agent=previous, to_agent=s.agent, reason=f"owner {s.owner}"
            )
        s.memory["agent"] = s.agent
        phrase = needs_fleet(str(self.task["text"]))
        if phrase is not None and s.side == "edge":
            yield await s.emit(HandoffRequest, to="cloud", reason=f"needs_fleet: {phrase!r}")
        notice = s.backend.notice
        if notice and s.memory.get("notice") != notice:
            s.memory["notice"] = notice
            self._text.append(notice + "\n")
            yield await s.emit(ContentChunk, text=notice + "\n")

    async def _rounds(self) -> AsyncGenerator[AgentEventBase, None]:
        s = self.session
        for _ in range(s.config.max_tool_rounds):
            call: ToolCall | None = None
            said: list[str] = []
            async with aclosing(self._generate(said)) as reply:
                async for event in reply:
                    if isinstance(event, ToolCall):
                        call = event
                    else:
                        yield event
            if call is None:
                s.messages.append(ChatMessage(role="assistant", content="".join(said)))
                return
            async with aclosing(self._call_tool(call, "".join(said))) as tool:
                async for event in tool:
                    yield event
        note = f"(stopped after {s.config.max_tool_rounds} tool calls)"
        self._text.append(note)
        s.messages.append(ChatMessage(role="assistant", content=note))
        yield await s.emit(ContentChunk, text=note)

    async def _generate(self, said: list[str]) -> AsyncGenerator[AgentEventBase | ToolCall, None]:
        """One backend reply: framed text chunks, and the tool call if it ends in one."""
        s = self.session
        window = await self._window()
        if window.dropped and s.side == "edge" and not s.memory.get("context_handoff"):
            # Once per session: the local model no longer sees the whole conversation.
            s.memory["context_handoff"] = True
            reason = f"context_full: {window.dropped} earlier messages left out of the window"
            yield await s.emit(HandoffRequest, to="cloud", reason=reason)
        messages = window.messages
        # aclosing: leaving a reply early (a tool call, the consumer gone) must end the
        # backend's generation now, not when the garbage collector finds it (PEP 533).
        stream = s.backend.stream(messages, s.tools.specs(), s.config.max_tokens)
        async with aclosing(stream):
            async for out in stream:
                if isinstance(out, ToolCall):
                    if (chunk := await self._flush()) is not None:
                        yield chunk
                    yield out
                    return
                said.append(out.text)
                if (chunk := await self._add(out)) is not None:
                    yield chunk
        if (chunk := await self._flush()) is not None:
            yield chunk

    async def _add(self, delta: TextDelta) -> ContentChunk | None:
        frame = self._framer.add(delta.text, delta.tokens)
        return await self._chunk(frame)

    async def _flush(self) -> ContentChunk | None:
        return await self._chunk(self._framer.flush())

    async def _chunk(self, frame: str | None) -> ContentChunk | None:
        if frame is None:
            return None
        self._text.append(frame)
        return await self.session.emit(ContentChunk, text=frame)

    async def _window(self) -> Window:
        s = self.session
        system = await self._system()
        # The reply's room comes off the top; never more than half the window, so a
        # max_tokens set for a big model still leaves a small one room for the question.
        n_ctx = s.backend.n_ctx
        budget = n_ctx - min(s.config.max_tokens, n_ctx // 2)
        window = fit(
            system, s.messages, budget=budget, turn_start=self.start_index,
            count=s.backend.count_tokens,
        )  # fmt: skip
        s.tool_state["context_dropped"] = window.dropped
        return window

    async def _system(self) -> str:
        """Instructions and tools first, the state summary last, fetched once per turn.

        Every round of a turn then sends the same system message, and the next turn's
        differs only from the summary on (it changes as the gateway runs): llama.cpp
        finds the rest of the prompt in its KV cache instead of evaluating it again.
        """
        if self._system_text is None:
            s = self.session
            parts = [SYSTEM_PROMPT.format(gw=s.gw, side=s.side)]
            parts += [tools_instructions(s.tools.specs()), await s.tools.summary()]
            self._system_text = "\n".join(part for part in parts if part)
        return self._system_text

    async def _call_tool(self, call: ToolCall, said: str) -> AsyncGenerator[AgentEventBase, None]:
        s = self.session
        calls = s.tool_state.get("calls", 0)
        number = (calls if isinstance(calls, int) else 0) + 1
        call_id = f"call-{number}"
        args = dict(call.arguments)
        yield await s.emit(ToolExecution, call_id=call_id, tool=call.name, args=args)
        outcome = await s.tools.call(call.name, args, s.context())
        s.tool_state["calls"] = number
        s.tool_state["last"] = {"tool": call.name, "args": args, "ok": outcome.ok}
        s.messages.append(ChatMessage(role="assistant", content=said + format_call(call)))
        s.messages.append(ChatMessage(role="tool", name=call.name, content=outcome.text))
        yield await s.emit(
            ToolResult, call_id=call_id, tool=call.name, ok=outcome.ok, result=outcome.result
        )

    async def _failed(self, exc: AgentFailure) -> AsyncGenerator[AgentEventBase, None]:
        s = self.session
        if isinstance(exc, ContextFull) and s.side == "edge":
            yield await s.emit(HandoffRequest, to="cloud", reason=f"context_full: {exc}")
        if not exc.retryable:
            self._done()
        yield await s.emit(AgentError, code=exc.code, message=str(exc), retryable=exc.retryable)

    async def _complete(self) -> AgentComplete:
        s = self.session
        self._done()
        event = await s.emit(AgentComplete, text="".join(self._text), tokens=self._framer.tokens)
        if s.recorder is not None:  # nowhere to keep it otherwise
            await s.checkpoint()
        return event

    def _done(self) -> None:
        """The question is answered (or cannot be): no longer pending."""
        pending = self.session.pending
        if self.task in pending:
            pending.remove(self.task)


def superseded(messages: Sequence[ChatMessage], task: dict[str, JsonValue]) -> bool:
    """Whether a later question follows the pending `task` in `messages`: then it is
    no longer the turn in progress and must not be restarted (a snapshot written before
    questions superseded pending ones can still carry such a task)."""
    return any(m.role == "user" for m in messages[_index(task) + 1 :])


def _quote(task: dict[str, JsonValue]) -> str:
    return str(task.get("text", ""))[:60]


def _index(task: dict[str, JsonValue]) -> int:
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ValueError(f"pending task without a message index: {task!r}")
    return index
