"""Agents registered by config: `[[planner.agents]]` tables in `cloud.toml`."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from shared.config import Section
from shared.messages.base import Scalar

# `package.module:attribute`, the same spelling as an entry point's value.
_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class AgentEntry(Section):
    """One plug-in agent: `factory(**options)` must return an `Agent`."""

    factory: str = Field(description="`package.module:callable` returning an Agent")
    options: dict[str, Scalar] = Field(default_factory=dict)
    priority: int = Field(default=100, description="lower runs first; first proposal wins")
    enabled: bool = True

    @field_validator("factory")
    @classmethod
    def _spelled_like_entry_point(cls, value: str) -> str:
        if not _FACTORY_RE.match(value):
            raise ValueError("expected `package.module:callable`")
        return value
