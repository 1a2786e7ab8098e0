"""Who owns a session, and the NATS inbox each owner listens on.

An owner id names one process that can act for a session: `edge:<gateway>` (a gateway's
daemon) or `cloud:<replica>` (one orchestrator replica). Each owner has an inbox:

    edge:gw1     handoff.gw1.<op>              (`subjects.handoff_request` is op "request")
    cloud:r1     cloud.session.r1.<op>
    any cloud    cloud.session.prepare          (queue group: the replica that answers
                                                 first takes the session)

ops: `request` (start a handoff), `prepare` (load a snapshot), `commit` (the lease flipped,
start acting), `ask` (user input for a session this owner holds), `open` (a gateway's
daemon: start or find a session for a client such as `baton chat`). Gateway ids cannot start
with `_` or contain `.` (`subjects.ID_PATTERN`), so the two trees never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from shared.subjects import check_id

Side = Literal["edge", "cloud"]
SIDES: tuple[Side, ...] = get_args(Side)
Op = Literal["request", "prepare", "commit", "ask", "open"]

CLOUD_PREPARE = "cloud.session.prepare"
CLOUD_QUEUE = "baton-sessions"


@dataclass(frozen=True, slots=True)
class Owner:
    side: Side
    name: str  # the gateway id, or the replica name

    def __post_init__(self) -> None:
        check_id(self.name, f"{self.side} owner name")

    @classmethod
    def parse(cls, owner_id: str) -> Owner:
        side, _, name = owner_id.partition(":")
        if side not in SIDES:
            raise ValueError(f"owner id {owner_id!r} is not edge:<gw> or cloud:<replica>")
        return cls(side, name)

    @property
    def id(self) -> str:
        return f"{self.side}:{self.name}"

    def inbox(self, op: Op) -> str:
        if self.side == "edge":
            return f"handoff.{self.name}.{op}"
        return f"cloud.session.{self.name}.{op}"

    def __str__(self) -> str:
        return self.id


def prepare_subject(to: Owner | Side) -> str:
    """Where a handoff's snapshot goes: one owner's inbox, or any cloud replica."""
    if isinstance(to, Owner):
        return to.inbox("prepare")
    if to == "cloud":
        return CLOUD_PREPARE
    raise ValueError("a handoff to the edge names its gateway")
