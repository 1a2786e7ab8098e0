"""The gateway's local agent: tools over the edge's own state, sessions in its SQLite.

    LocalAgent       backend + tools + session store + audit stream, opened together
    EdgeState        what the tools read and do (store, rules, guarded actuation)
    edge_tools       the tools, as a `shared.agent.ToolBox`
    SessionStore     sessions and their events in `edge.db` (the audit stream's outbox)
    LocalActuation   the edge's guard and actuator for an agent outside the daemon

The engine itself (sessions, backends, events) is `shared.agent`: the cloud runs it too.
"""

from edge.agent.actuation import LocalActuation
from edge.agent.local import LocalAgent
from edge.agent.readings import ReadingTap, RecentReadings
from edge.agent.state import EdgeState
from edge.agent.store import SessionStore
from edge.agent.tools import edge_tools

__all__ = [
    "EdgeState",
    "LocalActuation",
    "LocalAgent",
    "ReadingTap",
    "RecentReadings",
    "SessionStore",
    "edge_tools",
]
