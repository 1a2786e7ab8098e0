"""The gateway's side of session handoff (DESIGN "Edge handoff").

    EdgeHandoff        SessionHost for `edge:<gateway>` + HandoffPolicy + device state
    HandoffConfig      `[handoff]` of edge.toml
    DeviceState        the device-state seam; MemoryDeviceState, SysfsDeviceState
    edge_loader        turns a snapshot into an AgentSession with the gateway's backend
    chat_handoff       the hook `baton chat` uses (/handoff cloud|edge, remote questions)

The protocol itself (lease, snapshot, stream, faults) is `shared.session`.
"""

from edge.handoff.chat import ChatHandoff, chat_handoff
from edge.handoff.config import HandoffConfig
from edge.handoff.device import DeviceState, MemoryDeviceState, SysfsDeviceState
from edge.handoff.loader import edge_loader
from edge.handoff.service import EdgeHandoff

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
