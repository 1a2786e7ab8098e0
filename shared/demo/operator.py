"""`Operator`: the demo's operator at `baton chat`, one line at a time.

    transcript = await Operator(new_chat, SCRIPT, hosted=True).run()
    transcript.lines      # what the chat printed (its last run)
    transcript.failures   # each /handoff that left the session where it was, in the
                          # chat's words (all but a last one were tried again)

It types a line and waits for the chat's answer (the status line `[session … · owner …
· epoch …]` the chat prints after each question and each /handoff) before the next one,
and does what a person would when the chat says something went wrong:

- a `/handoff X` after which the session is not on X (the chat says why: `handoff
  failed: …`; on a loaded machine a prepare or a commit can time out): it looks again
  with `/status` a moment later (a move whose answer was lost shows there once the
  chat's lease board has it), and tries again, a few times;
- a chat that runs the session itself although the gateway's daemon hosts sessions (the
  daemon did not answer its open in time): /handoff is refused there ("leave and start
  baton chat again"), so it leaves and starts the chat again.

Where handoff is not installed the chat says so once (`Handoff is not available here`),
and the operator goes on with its questions.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from shared.compat import timeout
from shared.demo.child import Child

log = logging.getLogger(__name__)

STATUS: Final = re.compile(r"\[session (\S+) · owner (\w+) · epoch (\d+)")
# `baton chat`'s answer to /handoff where the protocol is not installed.
UNAVAILABLE: Final = re.compile(r"Handoff is not available here \((.*?)\)")
_MOVED: Final = f"{STATUS.pattern}|{UNAVAILABLE.pattern}"  # what follows a /handoff
_FAILED: Final = re.compile(r"handoff failed: (.*)")
_SELF_HOSTED: Final = "This chat runs the session itself"
# A question is answered in seconds; a handoff order may wait for a running turn first
# (`shared.session.host`: up to twice the turn wait plus the prepare timeout).
STEP_TIMEOUT_S: Final = 75.0
OPEN_TIMEOUT_S: Final = 45.0  # the chat's start-up (imports) and the daemon's open
MOVE_ATTEMPTS: Final = 3
OPEN_ATTEMPTS: Final = 3
# Before looking again after a move that did not show: time for a lease board to see
# the flip, or for a hub to answer again. A person's pause, not a wait for state.
RETRY_PAUSE_S: Final = 2.0
QUIT_TIMEOUT_S: Final = 15.0


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Operator:
    def __init__(
        self,
        new_chat: Callable[[], Child],
        script: Sequence[str],
        *,
        hosted: bool,
        retry_pause_s: float = RETRY_PAUSE_S,
    ) -> None:
        self._new_chat = new_chat
        self._script = script
        self._hosted = hosted  # the gateway's daemon hosts sessions: the chat is its client
        self._retry_pause_s = retry_pause_s
        self.transcript = Transcript()

    async def run(self) -> Transcript:
        """Type the script into a chat (started again if it runs the session itself
        beside a hosting daemon); `ComponentFailed` if the chat stops answering."""
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            chat = self._new_chat()
            self.transcript = Transcript()
            await chat.start()
            try:
                if await self._session(chat, last=attempt == OPEN_ATTEMPTS):
                    return self.transcript
            finally:
                self.transcript.lines = list(chat.lines)
                await chat.aclose()
            log.info("baton chat ran the session itself beside the daemon; starting it again")
        return self.transcript

    async def _session(self, chat: Child, *, last: bool) -> bool:
        """The script, then /quit; False when the chat should be started again."""
        await chat.wait_for_line(STATUS.pattern, OPEN_TIMEOUT_S)
        if self._hosted and not last and any(_SELF_HOSTED in line for line in chat.lines):
            await self._quit(chat)
            return False
        for line in self._script:
            if line.startswith("/handoff "):
                await self._move(chat, line.removeprefix("/handoff ").strip())
            else:
                await chat.answer(line, STATUS.pattern, STEP_TIMEOUT_S)
        await self._quit(chat)
        return True

    async def _move(self, chat: Child, to: str) -> None:
        for attempt in range(1, MOVE_ATTEMPTS + 1):
            before = len(chat.lines)  # the chat prints a few dozen lines: none drop out
            answer = await chat.answer(f"/handoff {to}", _MOVED, STEP_TIMEOUT_S)
            if answer.group(2) is None or answer.group(2) == to:
                return  # moved, or handoff is not available here (the chat said so)
            why = _why(list(chat.lines)[before:], to)
            await asyncio.sleep(self._retry_pause_s)
            status = await chat.answer("/status", STATUS.pattern, STEP_TIMEOUT_S)
            if status.group(2) == to:
                return  # it had moved: the chat's view of the lease caught up
            self.transcript.failures.append(why)
            if attempt < MOVE_ATTEMPTS:
                log.info("/handoff %s did not move the session (%s); trying again", to, why)

    async def _quit(self, chat: Child) -> None:
        await chat.type_line("/quit")
        chat.end_input()
        try:
            async with timeout(QUIT_TIMEOUT_S):
                await chat.wait()
        except asyncio.TimeoutError:
            log.warning("baton chat did not exit after /quit; stopping it")


def _why(lines: list[str], to: str) -> str:
    """The chat's own words for a /handoff that left the session where it was."""
    for line in reversed(lines):
        if (failed := _FAILED.search(line)) is not None:
            return failed.group(1)
    return f"the session was not on the {to} after /handoff {to}"
