"""The `figures` fixture's interface as the reliability tests type it (tests/reliability/
conftest.py provides the object): counts for this mode, and the numbers a test measured.
Also `timeout_for()`: a pytest-timeout marker for a test whose full form is long."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Protocol

import pytest

# The conftest's switches (tests/reliability/conftest.py), read here for markers.
FULL_ENV = "BATON_RELIABILITY"
FULL_OPTION = "--reliability-full"

Value = int | float | str | bool | None


class Figures(Protocol):
    full: bool

    def scale(self, ci: int, full: int, name: str = "n") -> int: ...

    def record(self, **values: Value) -> None: ...

    def samples(self, name: str, values: Iterable[float]) -> None: ...


def full_requested() -> bool:
    """The full form, as far as a module can tell at import time (for its markers): the
    environment variable, or the flag on the command line. Tests themselves ask the
    `figures` fixture (conftest.is_full), which is authoritative."""
    return os.environ.get(FULL_ENV, "").strip().lower() == "full" or FULL_OPTION in sys.argv


def timeout_for(bounded_s: int, full_s: int) -> pytest.MarkDecorator:
    """A pytest-timeout marker fitting the mode: the full form runs far longer than the
    suite's default timeout allows."""
    return pytest.mark.timeout(full_s if full_requested() else bounded_s)
