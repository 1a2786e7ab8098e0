"""Device twins: desired (cloud-authored, versioned) vs reported (edge), in the hub KV."""

from cloud.twins.view import FleetView, MemoryFleetView, Rollup

__all__ = ["FleetView", "MemoryFleetView", "Rollup"]
