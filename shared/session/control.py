"""The handoff protocol's control messages (msgpack over NATS request/reply).

    HandoffOrder  -> owner.inbox("request")    "move this session to the cloud / edge"
    HandoffReport <-                            each step's latency, the new owner + epoch
    Prepare       -> new owner's "prepare"      the snapshot (inline) or its reference
    PrepareReply  <-                            loaded; the owner id it will hold the lease as
    Commit        -> new owner's "commit"       the lease flipped: its value and revision
    CommitReply   <-                            accepting input
    Ask / AskReply                              user input for a session owned elsewhere
    Open / OpenReply -> a gateway's "open"      a client (`baton chat`) has the daemon start
                                                a session, or find the one it names

They stay inside the session package (both sides import it); the wire messages that
outlive a handoff (snapshots, events, leases) are `shared.messages` and `lease`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidMessage, MalformedPayload
from shared.messages.base import Count, SessionId
from shared.session.owner import Side
from shared.session.snapshot import SnapRef

C = TypeVar("C", bound="Control")
MAX_CONTROL_BYTES = 1024 * 1024  # NATS' default max_payload: an inline snapshot fits


class Control(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(self.model_dump(mode="python"), use_bin_type=True)
        return packed

    @classmethod
    def decode(cls: type[C], data: bytes) -> C:
        if len(data) > MAX_CONTROL_BYTES:
            raise MalformedPayload(f"control message of {len(data)} bytes")
        try:
            raw: Any = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise MalformedPayload(f"control message: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise InvalidMessage(first["msg"], field=".".join(map(str, first["loc"]))) from exc


class HandoffOrder(Control):
    session: SessionId
    to: Side
    target: str | None = None  # an owner id; None: the gateway's edge / any cloud replica
    reason: str = Field(default="request", max_length=200)


class Step(Control):
    name: str
    ms: float


class HandoffReport(Control):
    ok: bool
    session: SessionId
    owner: str | None = None
    epoch: Count = 0
    steps: list[Step] = Field(default_factory=list)
    latency_ms: float = 0.0
    step: str = ""  # where it stopped, when it did not complete
    error: str = ""


class Prepare(Control):
    session: SessionId
    from_owner: str
    epoch: Count
    snap: SnapRef
    log_pos: Count
    last_seq: Count
    reason: str = ""
    snapshot: bytes | None = None  # inline when small; else read `snap` from the hub


class PrepareReply(Control):
    ok: bool
    owner: str = ""
    reason: str = ""


class Commit(Control):
    session: SessionId
    lease: dict[str, Any]  # the LeaseValue the old owner wrote
    revision: Count  # ... and its revision: the new epoch
    elapsed_ms: float = 0.0  # the handoff so far, on the old owner's clock


class CommitReply(Control):
    ok: bool
    reason: str = ""
    accept_ms: float = 0.0


class Ask(Control):
    session: SessionId
    text: str = Field(max_length=64 * 1024)


class AskReply(Control):
    ok: bool
    after: Count = 0  # the turn's events follow this seq ...
    epoch: Count = 0  # ... at this epoch
    owner: str | None = None
    reason: str = ""


class Open(Control):
    session: SessionId | None = None  # None: a new session; else continue this one


class OpenReply(Control):
    ok: bool
    session: str = ""  # the session's id (a new one when none was asked for)
    owner: str | None = None  # who holds its lease now (the daemon, or a cloud replica)
    epoch: Count = 0
    model: str = ""  # the gateway's model, for the client's status line
    notice: str = ""  # what the gateway's agent says about itself (no model file, ...)
    reason: str = ""
