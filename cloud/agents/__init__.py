"""Plug-in agents of the cloud orchestrator: the protocol, the registry and the loaders.

    from cloud.agents import Agent, AgentRegistry, Proposal, Trigger

Planner variants (the deterministic and the LLM planner are agents too) and custom
reactive or deliberative agents register with an id, the trigger kinds they handle and
the tools (actions) their plans may use. See `base` for the protocol and `loader` for
entry points (`baton.agents`) and `[[planner.agents]]` config tables.
"""

from cloud.agents.base import (
    ANY,
    TRIGGER_KINDS,
    Agent,
    AgentContext,
    Proposal,
    Trigger,
    TriggerKind,
)
from cloud.agents.config import AgentEntry
from cloud.agents.health import AgentStatus
from cloud.agents.loader import ENTRY_POINT_GROUP, load_configured, load_entry_points
from cloud.agents.registry import AgentRegistry, Outcome

__all__ = [
    "ANY",
    "ENTRY_POINT_GROUP",
    "TRIGGER_KINDS",
    "Agent",
    "AgentContext",
    "AgentEntry",
    "AgentRegistry",
    "AgentStatus",
    "Outcome",
    "Proposal",
    "Trigger",
    "TriggerKind",
    "load_configured",
    "load_entry_points",
]
