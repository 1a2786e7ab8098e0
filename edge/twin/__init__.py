"""Device twins on the gateway: desired state applied by version, reported back up."""

from edge.twin.keeper import TWIN_DEADLINE_MS, TwinKeeper

__all__ = ["TWIN_DEADLINE_MS", "TwinKeeper"]
