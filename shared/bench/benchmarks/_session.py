"""The session engineer's measuring functions (`shared.session.bench`), or a clear Skip."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from shared.bench.runner import Skip

MODULE = "shared.session.bench"


def measuring_function(name: str) -> Callable[..., Any]:
    """`shared.session.bench.<name>`; `Skip` saying what is missing when it is not there."""
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == MODULE:
            raise Skip(f"{MODULE} (the session's measuring functions) has not landed yet") from exc
        raise Skip(f"{MODULE} needs {exc.name}, which is not installed") from exc
    found = getattr(module, name, None)
    if not callable(found):
        raise Skip(f"{MODULE} has no {name}() yet")
    return found  # type: ignore[no-any-return]
