"""The session package's exceptions, under `shared.errors.BatonError`.

    SessionError              anything the handoff protocol raises on purpose
    ├── LeaseLost             this side no longer holds the session's lease (a CAS lost,
    │                         or it was not renewed within its TTL); it must stop acting
    ├── NotOwner              the session is owned by someone else (`owner`), or nobody
    ├── HandoffAborted        a handoff did not happen; the old owner still owns it
    │                         (`step` says where it stopped); a retry may help
    ├── SnapshotError         a snapshot is missing, truncated or fails its digest
    └── ChannelError          a WebRTC channel could not be set up (the stream falls back
                              to NATS); a retry may help

nats-py errors are translated where they happen (`lease`, `log`, `snapshot`) into these or
into `shared.errors.TransportError`.
"""

from __future__ import annotations

from shared.errors import BatonError


class SessionError(BatonError):
    """Root of the session package's errors."""


class LeaseLost(SessionError):
    def __init__(self, session: str, detail: str) -> None:
        self.session = session
        super().__init__(f"session {session}: lease lost ({detail})")


class NotOwner(SessionError):
    def __init__(self, session: str, owner: str | None) -> None:
        self.session = session
        self.owner = owner
        super().__init__(f"session {session} is owned by {owner or 'nobody'}")


class HandoffAborted(SessionError):
    retryable = True

    def __init__(self, session: str, step: str, reason: str) -> None:
        self.session = session
        self.step = step
        self.reason = reason
        super().__init__(f"handoff of {session} aborted at {step}: {reason}")


class SnapshotError(SessionError):
    pass


class ChannelError(SessionError):
    retryable = True
