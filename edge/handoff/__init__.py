"""The gateway's side of session handoff (DESIGN "Edge handoff").

    EdgeHandoff        SessionHost for `edge:<gateway>` + HandoffPolicy + device state
    HandoffConfig      `[handoff]` of edge.toml
    DeviceState        the device-state seam; MemoryDeviceState, SysfsDeviceState
    edge_loader        turns a snapshot into an AgentSession with the gateway's backend
    chat_handoff       the hook `baton chat` uses (/handoff cloud|edge, remote questions)

The protocol itself (lease, snapshot, stream, faults) is `shared.session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_getattr

if TYPE_CHECKING:
    from edge.handoff.chat import ChatHandoff, chat_handoff
    from edge.handoff.config import HandoffConfig
    from edge.handoff.device import DeviceState, MemoryDeviceState, SysfsDeviceState
    from edge.handoff.loader import edge_loader
    from edge.handoff.service import EdgeHandoff

# Loaded on first use (PEP 562): `edge.config` reads `HandoffConfig` at every daemon
# start, and the protocol (aiortc, the agent engine) must not cost start-up time.
_EXPORTS = {
    "ChatHandoff": "edge.handoff.chat",
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
    "DeviceState",
    "EdgeHandoff",
    "HandoffConfig",
    "MemoryDeviceState",
    "SysfsDeviceState",
    "chat_handoff",
    "edge_loader",
]
