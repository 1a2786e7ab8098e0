"""The gateway's link to the hub, both ways.

    Uplink     leaf UPLINK stream (store-and-forward) → hub FLEET, plus `submit()` for
               the daemon's decisions, twin reports and events
    Downlink   hub DOWNLINK (durable consumer edge-<gw>) → a `DownlinkHandler`

Both take a connection to the gateway's leaf nats-server and reach the hub's JetStream
domain across the leaf node link. See README.md for the full-disk policy.
"""

from edge.uplink.config import DownlinkConfig, UplinkConfig
from edge.uplink.dispatch import DownlinkHandler
from edge.uplink.downlink import Downlink
from edge.uplink.report import DownlinkReport, EventSink
from edge.uplink.stats import DownlinkStats, UplinkStats
from edge.uplink.uplink import Uplink

__all__ = [
    "Downlink",
    "DownlinkConfig",
    "DownlinkHandler",
    "DownlinkReport",
    "DownlinkStats",
    "EventSink",
    "Uplink",
    "UplinkConfig",
    "UplinkStats",
]
