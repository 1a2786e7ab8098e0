"""The `figures` fixture's interface as the reliability tests type it (tests/reliability/
conftest.py provides the object): counts for this mode, and the numbers a test measured."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

Value = int | float | str | bool | None


class Figures(Protocol):
    full: bool

    def scale(self, ci: int, full: int, name: str = "n") -> int: ...

    def record(self, **values: Value) -> None: ...

    def samples(self, name: str, values: Iterable[float]) -> None: ...
