"""Agent sessions that move between the edge and the cloud (DESIGN "Edge handoff").

    SessionHost       one process's side: runs owned sessions, takes handoffs, reclaims
                      expired leases, follows sessions owned elsewhere
    SessionRunner     one owned session: agent + lease keeper + event log + live stream
    hand_out          the owner's half of a handoff (`Intake` is the new owner's)
    LeaseStore        the hub KV `leases`: CAS writes, the revision is the fencing epoch
    LeaseBoard        every lease as this process saw it (one KV watch), clock-free expiry
    EventFeed         a follower's stream: WebRTC data channel, NATS log as the fallback
    SeqGate           deliver each seq once, in order; fence lower epochs
    HandoffPolicy     when the device's state or the agent's limits call for a handoff

Errors: `shared.session.errors` (`SessionError` and below).
"""

from shared.session.agent import AgentLoader, SessionAgent
from shared.session.board import LeaseBoard, Seen
from shared.session.control import HandoffReport, Step
from shared.session.errors import (
    ChannelError,
    HandoffAborted,
    LeaseLost,
    NotOwner,
    SessionError,
    SnapshotError,
)
from shared.session.feed import EventFeed
from shared.session.frames import Mark
from shared.session.gate import SeqGate
from shared.session.handoff import hand_out
from shared.session.host import SessionHost
from shared.session.intake import Intake
from shared.session.lease import Lease, LeaseStore, LeaseValue
from shared.session.owner import Owner, Side
from shared.session.policy import DeviceSignals, HandoffPolicy
from shared.session.runner import HostContext, SessionRunner, SessionSettings
from shared.session.snapshot import SnapRef, SnapshotStore

__all__ = [
    "AgentLoader",
    "ChannelError",
    "DeviceSignals",
    "EventFeed",
    "HandoffAborted",
    "HandoffPolicy",
    "HandoffReport",
    "HostContext",
    "Intake",
    "Lease",
    "LeaseBoard",
    "LeaseLost",
    "LeaseStore",
    "LeaseValue",
    "Mark",
    "NotOwner",
    "Owner",
    "Seen",
    "SeqGate",
    "SessionAgent",
    "SessionError",
    "SessionHost",
    "SessionRunner",
    "SessionSettings",
    "Side",
    "SnapRef",
    "SnapshotError",
    "SnapshotStore",
    "Step",
    "hand_out",
]
