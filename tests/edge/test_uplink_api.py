"""The public surface of `edge.uplink`, and what needs no server."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

import edge.uplink
from edge.errors import UplinkError
from edge.uplink import Downlink, DownlinkConfig, Uplink, UplinkConfig, UplinkStats
from edge.uplink.backoff import Backoff


def test_all_is_pinned() -> None:
    assert sorted(edge.uplink.__all__) == [
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


async def test_close_is_safe_twice_and_final() -> None:
    uplink = Uplink(Client(), "gw1", UplinkConfig())
    await uplink.aclose()
    await uplink.aclose()
    with pytest.raises(UplinkError):
        await uplink.start()
    downlink = Downlink(Client(), "gw1", DownlinkConfig(), handler=object())  # type: ignore[arg-type]
    await downlink.aclose()
    await downlink.aclose()
    with pytest.raises(UplinkError):
        await downlink.start()


async def test_submit_checks_kind_and_device_and_never_blocks() -> None:
    uplink = Uplink(Client(), "gw1", UplinkConfig())
    with pytest.raises(ValueError, match="kind"):
        uplink.submit("nope", "d1", 1, b"{}")
    with pytest.raises(ValueError, match="device"):
        uplink.submit("dec", "d1.>", 1, b"{}")
    uplink.submit("dec", "d1", "k", b"{}")  # queued, nothing started: returns at once
    assert uplink.stats().submitted == 1
    assert uplink.stats().backlog == (0, 0)
    await uplink.flush()  # not running: says so in the log, does not hang
    await uplink.aclose()


def test_invalid_gateway_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        Uplink(Client(), "gw.1", UplinkConfig())


def test_stats_snapshot_is_frozen() -> None:
    stats = UplinkStats(backlog_msgs=3, backlog_bytes=300)
    assert stats.backlog == (3, 300)
    with pytest.raises(AttributeError):
        stats.forwarded = 1  # type: ignore[misc]


def test_backoff_grows_with_jitter_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(1.0, first_s=0.1)
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.05 <= d <= 1.0 for d in delays)
    assert backoff.failures == 8
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() <= 0.1
