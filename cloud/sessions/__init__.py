"""The cloud's side of session handoff (DESIGN "Edge handoff").

    SessionManager   SessionHost for `cloud:<replica>`: takes handed-off sessions, runs
                     them with the cloud's model, streams them, hands them back
    SessionInfo      one session as the API lists it
    cloud_loader     a snapshot -> AgentSession with the cloud's backend
    start_sessions   the orchestrator's call: a started SessionManager

The protocol itself is `shared.session`.
"""

from cloud.sessions.attach import start_sessions
from cloud.sessions.manager import SessionInfo, SessionManager, cloud_loader

__all__ = ["SessionInfo", "SessionManager", "cloud_loader", "start_sessions"]
