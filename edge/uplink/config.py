"""Settings of the uplink (leaf UPLINK stream → hub) and the downlink (hub → gateway)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared import streams
from shared.config import Section


class UplinkConfig(Section):
    enabled: bool = Field(
        default=True,
        description="forward to the hub; when false the leaf still stores, nothing is sent",
    )
    max_bytes: int = Field(
        default=streams.UPLINK_MAX_BYTES, gt=0, description="leaf store size limit"
    )
    max_age_s: float = Field(
        default=streams.UPLINK_MAX_AGE_S, gt=0, description="oldest kept reading"
    )
    when_full: streams.FullPolicy = Field(
        default="drop_oldest",
        description="drop_oldest keeps fresh data; refuse_new keeps the backlog",
    )
    batch: int = Field(
        default=512,
        gt=0,
        le=4000,  # nats-py keeps at most 4000 async publishes in flight per context
        description="messages fetched and forwarded per round",
    )
    hub_ack_timeout_s: float = Field(default=5.0, gt=0, description="wait for the hub's PubAck")
    retry_backoff_max_s: float = Field(
        default=5.0, gt=0, description="cap of the reconnect backoff"
    )


class DownlinkConfig(Section):
    enabled: bool = True
    durable: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="consumer name; default edge-<gateway>",
    )
    ack_wait_s: float = Field(
        default=30.0, gt=0, description="redelivery delay of an update the handler did not finish"
    )
    on_bad_update: Literal["refuse"] = "refuse"
    model_fetch_timeout_s: float = Field(
        default=60.0, gt=0, description="fetching a model from the hub's Object Store"
    )
    retry_backoff_max_s: float = Field(
        default=5.0, gt=0, description="cap of the resubscribe backoff while the hub is away"
    )
