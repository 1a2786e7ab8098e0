"""The gateway's side of session handoff (DESIGN "Edge handoff").

    HandoffAttachment  how the edge daemon hosts sessions: attaches in the background
                       once the hub answers, never holding up the daemon's start
    EdgeHandoff        SessionHost for `edge:<gateway>` + HandoffPolicy + device state,
                       answering `handoff.<gw>.open` (OpenServer) for `baton chat`
    HandoffConfig      `[handoff]` of edge.toml
    DeviceState        the device-state seam; MemoryDeviceState, SysfsDeviceState
    edge_loader        turns a snapshot into an AgentSession with the gateway's backend
    daemon_session     `baton chat` as a client of the daemon's session (DaemonSession;
                       NotHosted when no daemon hosts sessions)
    chat_handoff       `baton chat` hosting its session itself, without a daemon

The protocol itself (lease, snapshot, stream, faults) is `shared.session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_getattr

if TYPE_CHECKING:
    from edge.handoff.attach import HandoffAttachment
    from edge.handoff.chat import (
        ChatHandoff,
        DaemonSession,
        NotHosted,
        chat_handoff,
        daemon_session,
    )
    from edge.handoff.config import HandoffConfig
    from edge.handoff.device import DeviceState, MemoryDeviceState, SysfsDeviceState
    from edge.handoff.loader import edge_loader
    from edge.handoff.service import EdgeHandoff

# Loaded on first use (PEP 562): `edge.config` reads `HandoffConfig` at every daemon
# start, and the protocol (aiortc, the agent engine) must not cost start-up time.
_EXPORTS = {
    "ChatHandoff": "edge.handoff.chat",
    "DaemonSession": "edge.handoff.chat",
    "HandoffAttachment": "edge.handoff.attach",
    "NotHosted": "edge.handoff.chat",
    "daemon_session": "edge.handoff.chat",
    "DeviceState": "edge.handoff.device",
    "EdgeHandoff": "edge.handoff.service",
    "HandoffConfig": "edge.handoff.config",
    "MemoryDeviceState": "edge.handoff.device",
    "SysfsDeviceState": "edge.handoff.device",
    "chat_handoff": "edge.handoff.chat",
    "edge_loader": "edge.handoff.loader",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = [
    "ChatHandoff",
    "DaemonSession",
    "DeviceState",
    "EdgeHandoff",
    "HandoffAttachment",
    "HandoffConfig",
    "MemoryDeviceState",
    "NotHosted",
    "SysfsDeviceState",
    "chat_handoff",
    "daemon_session",
    "edge_loader",
]
