"""The flow graph: gateways and their devices, the hub, this replica, its agents and the
agent sessions with their current owner, as Cytoscape.js elements.

    device ──▶ gateway ──▶ hub ──▶ cloud replica ──▶ planner agent
                  ▲                      ▲
                  └──── session ─────────┘   (an edge to whichever side owns it)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloud.dashboard.sessiontap import AgentStream


@dataclass(frozen=True, slots=True)
class DeviceNode:
    gw: str
    device: str
    online: bool


def build(
    replica: str,
    devices: Iterable[DeviceNode],
    planners: Iterable[str],
    sessions: Iterable[AgentStream],
) -> dict[str, Any]:
    """{"nodes": [...], "edges": [...]} in Cytoscape's `{data: {...}}` form."""
    cloud = f"cloud:{replica}"
    nodes = [_node(cloud, f"cloud {replica}", "cloud"), _node("hub", "hub", "hub")]
    edges = [_edge("hub", cloud, "FLEET")]
    gateways: list[str] = []
    for dev in devices:
        gw = f"gw:{dev.gw}"
        if dev.gw not in gateways:
            gateways.append(dev.gw)
            nodes.append(_node(gw, dev.gw, "gateway"))
            edges.append(_edge(gw, "hub", "uplink"))
        node = f"dev:{dev.gw}/{dev.device}"
        nodes.append(_node(node, dev.device, "device", online=dev.online))
        edges.append(_edge(node, gw, "readings"))
    for name in sorted(set(planners)):
        nodes.append(_node(f"agent:{name}", f"{name} planner", "agent"))
        edges.append(_edge(cloud, f"agent:{name}", "plans"))
    for stream in sessions:
        node = f"session:{stream.session}"
        nodes.append(_node(node, f"session {stream.session}", "session", state=stream.state))
        owner = cloud if stream.owner == "cloud" else _edge_owner(gateways)
        if owner is not None:
            edges.append(_edge(node, owner, f"owner, epoch {stream.epoch}"))
    return {"nodes": nodes, "edges": edges}


def _edge_owner(gateways: list[str]) -> str | None:
    # Session events name the owning side, not the gateway; with one gateway (the demo,
    # most sites) that is enough to place it.
    return f"gw:{gateways[0]}" if len(gateways) == 1 else None


def _node(node_id: str, label: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"data": {"id": node_id, "label": label, "kind": kind, **extra}}


def _edge(source: str, target: str, label: str) -> dict[str, Any]:
    return {"data": {"id": f"{source}->{target}", "source": source, "target": target,
                     "label": label}}  # fmt: skip
