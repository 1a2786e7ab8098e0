"""The context budget: what of a session reaches the model, within `n_ctx`.

The model sees one system message (instructions, tools, a compact state summary, and a
note naming what was left out), then the newest turns that fit. Older turns are
dropped whole, oldest first; everything else stays reachable through the tools. When
even the current question does not fit, `ContextFull` says so (the session then asks to
hand off to the cloud's larger model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.agent.errors import ContextFull
from shared.messages import ChatMessage

# Role markers and separators a chat template adds around each message.
MESSAGE_OVERHEAD = 6
NOTE_QUOTE_CHARS = 60
NOTE_MAX_QUOTES = 4


@dataclass(frozen=True, slots=True)
class Window:
    messages: list[ChatMessage]
    dropped: int
    tokens: int


def fit(
    system: str,
    history: Sequence[ChatMessage],
    *,
    budget: int,
    turn_start: int,
    count: Callable[[str], int],
) -> Window:
    """The system message plus the newest `history` that fits `budget` tokens.

    `history[turn_start:]` is the current turn (the question and its tool results): it
    must fit whole, or `ContextFull` is raised.
    """
    used = count(system) + MESSAGE_OVERHEAD
    sizes = [count(m.content) + MESSAGE_OVERHEAD for m in history]
    if used + sum(sizes[turn_start:]) > budget:
        raise ContextFull(
            f"the question and its tool results need {used + sum(sizes[turn_start:])} "
            f"tokens of a {budget}-token budget"
        )
    first, note = _drop_oldest(history, sizes, budget - used, turn_start, count)
    if note:
        system = f"{system}\n{note}"
    kept = list(history[first:])
    tokens = count(system) + MESSAGE_OVERHEAD + sum(sizes[first:])
    return Window([ChatMessage(role="system", content=system), *kept], first, tokens)


def _drop_oldest(
    history: Sequence[ChatMessage],
    sizes: Sequence[int],
    room: int,
    turn_start: int,
    count: Callable[[str], int],
) -> tuple[int, str]:
    """(index of the oldest message kept, the note on what was dropped)."""
    first, note, reserve = _first_kept(sizes, room, turn_start), "", 0
    # The note takes room too, which may drop more; a few rounds settle it (its size is
    # bounded), and the quote-less form is the fallback that always fits the reserve.
    for _ in range(3):
        if first == 0:
            return 0, ""
        note = omitted_note(history[:first])
        need = count(note) + 1
        if need <= reserve:
            break
        reserve = need
        first = _skip_orphans(history, _first_kept(sizes, room - reserve, turn_start), turn_start)
    else:
        note = omitted_note(history[:first], quotes=False)
    return first, note


def _skip_orphans(history: Sequence[ChatMessage], first: int, turn_start: int) -> int:
    # A tool result whose call was dropped would read as an answer to nothing.
    while first < turn_start and history[first].role == "tool":
        first += 1
    return first


def _first_kept(sizes: Sequence[int], room: int, turn_start: int) -> int:
    """Index of the oldest message kept when the newest ones fill `room`."""
    total = sum(sizes[turn_start:])
    first = turn_start
    while first > 0 and total + sizes[first - 1] <= room:
        first -= 1
        total += sizes[first]
    return first


def omitted_note(dropped: Sequence[ChatMessage], *, quotes: bool = True) -> str:
    """What the model is told about the turns it cannot see."""
    questions = [m.content for m in dropped if m.role == "user"] if quotes else []
    shown = [_quote(q) for q in questions[-NOTE_MAX_QUOTES:]]
    more = len(questions) - len(shown)
    asked = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    note = f"[Earlier conversation: {len(dropped)} messages omitted for space"
    return note + (f"; the user asked: {asked}]" if asked else "]")


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > NOTE_QUOTE_CHARS:
        flat = flat[: NOTE_QUOTE_CHARS - 1] + "…"
    return f'"{flat}"'
