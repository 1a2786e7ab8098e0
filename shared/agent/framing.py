"""Frame streamed tokens into `content_chunk`s of several tokens each.

Every event travels as one message (SQLite row, audit publish, WebRTC data-channel
message), and a data channel carries ~0.2 MB/s at 100-byte messages against ~4 MB/s at
16 KiB: one event per token would spend the link on framing. A frame is emitted once
`chars` characters wait or the oldest waiting text is `delay_s` old, checked as text
arrives: so a slow model's token waits at most one inter-token gap past the delay.
"""

from __future__ import annotations

from collections.abc import Callable


class Framer:
    __slots__ = ("_chars", "_clock", "_delay_s", "_parts", "_since", "_size", "tokens")

    def __init__(self, chars: int, delay_s: float, clock: Callable[[], float]) -> None:
        self._chars = chars
        self._delay_s = delay_s
        self._clock = clock
        self._parts: list[str] = []
        self._size = 0
        self._since = 0.0
        self.tokens = 0

    def add(self, text: str, tokens: int = 1) -> str | None:
        """Take text; return a frame when one is due."""
        self.tokens += tokens
        if not text:
            return None
        if not self._parts:
            self._since = self._clock()
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self._chars or self._clock() - self._since >= self._delay_s:
            return self.flush()
        return None

    def flush(self) -> str | None:
        """Whatever waits, as one frame (None when nothing does)."""
        if not self._parts:
            return None
        frame = "".join(self._parts)
        self._parts, self._size = [], 0
        return frame
