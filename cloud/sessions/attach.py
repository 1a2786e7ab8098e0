"""`start_sessions`: the orchestrator's one call to take part in session handoff.

    self._sessions = await start_sessions(self._nc, self.replica)   # after ensure_hub
    ApiDeps(..., sessions=self._sessions)
    await self._sessions.aclose()                                   # before the API stops

The manager answers `cloud.session.prepare` (a queue group over the replicas) from the
moment it returns, so start it after the hub's streams and buckets exist.
"""

from __future__ import annotations

from nats.aio.client import Client

from cloud.sessions.manager import SessionManager
from shared.agent import InferenceBackend
from shared.session import SessionSettings


async def start_sessions(
    nc: Client,
    replica: str,
    *,
    backend: InferenceBackend | None = None,
    settings: SessionSettings | None = None,
) -> SessionManager:
    """A started `SessionManager` for `replica` (the rule backend when no model is given);
    the caller owns it: `aclose()` drains the sessions it runs and is safe twice."""
    manager = SessionManager(nc, replica, backend=backend, settings=settings)
    await manager.__aenter__()
    return manager
