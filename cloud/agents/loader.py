"""Load plug-in agents from Python entry points (group `baton.agents`) and from config.

A third-party package ships an agent by declaring, in its own pyproject::

    [project.entry-points."baton.agents"]
    my-agent = "my_pkg.agents:MyAgent"      # called with no arguments

and an operator adds one without packaging it through `cloud.toml`::

    [[planner.agents]]
    factory = "my_pkg.agents:make"           # called as make(**options)
    options = { threshold = 0.8 }
    priority = 50

A factory that cannot be imported, raises, or returns something that is not an `Agent`
is reported as a broken agent; the others still load.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from cloud.agents.base import Agent
from cloud.agents.config import AgentEntry
from cloud.agents.registry import DEFAULT_PRIORITY, AgentRegistry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "baton.agents"


def load_entry_points(registry: AgentRegistry, group: str = ENTRY_POINT_GROUP) -> int:
    """Register every agent the installed packages declare; returns how many loaded."""
    loaded = 0
    for ep in entry_points(group=group):
        loaded += _register(registry, ep.name, ep.load, {}, DEFAULT_PRIORITY)
    return loaded


def load_configured(registry: AgentRegistry, entries: Iterable[AgentEntry]) -> int:
    """Register the agents listed in config; returns how many loaded."""
    loaded = 0
    for entry in entries:
        if entry.enabled:
            load = _importer(entry.factory)
            loaded += _register(registry, entry.factory, load, entry.options, entry.priority)
    return loaded


def _importer(spec: str) -> Callable[[], Any]:
    def load() -> Any:
        module_name, _, attr = spec.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    return load


def _register(
    registry: AgentRegistry,
    name: str,
    load: Callable[[], Any],
    options: dict[str, Any],
    priority: int,
) -> int:
    try:
        factory = load()
        agent = factory(**options)
        if not isinstance(agent, Agent):
            raise TypeError(f"{type(agent).__name__} is not an Agent (id, handles, tools, propose)")
        registry.add(agent, priority=priority)
    except Exception as exc:  # a broken plug-in is reported, never fatal
        registry.broken(name, f"{type(exc).__name__}: {exc}")
        return 0
    log.info("agent %s loaded from %s", agent.id, name, extra={"agent": agent.id})
    return 1
