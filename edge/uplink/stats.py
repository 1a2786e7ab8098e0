"""Counters of the uplink and downlink, and the frozen snapshots callers read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UplinkStats:
    """A snapshot of the uplink, for metrics and the health endpoint.

    `backlog_*` come from the leaf (consumer pending + ack pending, stream bytes) and
    are refreshed about once a second; the counters are exact.
    """

    submitted: int = 0
    """Items given to `submit()`."""
    forwarded: int = 0
    """Messages acked at the leaf after the hub's PubAck (a re-send counts again)."""
    duplicates: int = 0
    """Re-sends the hub (or the leaf, for submits) had stored already: absorbed."""
    backlog_msgs: int = 0
    backlog_bytes: int = 0
    hub_connected: bool = False
    dropped_invalid: int = 0
    """Leaf messages never sent: a payload that does not decode, or a wrong subject."""
    dropped_full: int = 0
    """Messages the leaf discarded unforwarded (max_bytes / max_age, drop_oldest)."""
    submit_failed: int = 0
    """Submitted items the leaf never stored: refused (full, refuse_new) or unreachable."""
    errors: int = 0
    """Failed hub publishes (each retried), failed submits, leaf errors."""

    @property
    def backlog(self) -> tuple[int, int]:
        """(messages, bytes) waiting in the leaf store."""
        return self.backlog_msgs, self.backlog_bytes


class UplinkCounters:
    """The mutable side, shared by the forwarder, the submitter and the stats loop."""

    __slots__ = (
        "backlog_bytes",
        "backlog_msgs",
        "dropped_full",
        "dropped_invalid",
        "duplicates",
        "errors",
        "forwarded",
        "hub_connected",
        "submit_failed",
        "submitted",
    )

    def __init__(self) -> None:
        self.submitted = 0
        self.forwarded = 0
        self.duplicates = 0
        self.backlog_msgs = 0
        self.backlog_bytes = 0
        self.hub_connected = False
        self.dropped_invalid = 0
        self.dropped_full = 0
        self.submit_failed = 0
        self.errors = 0

    def snapshot(self) -> UplinkStats:
        return UplinkStats(
            submitted=self.submitted,
            forwarded=self.forwarded,
            duplicates=self.duplicates,
            backlog_msgs=self.backlog_msgs,
            backlog_bytes=self.backlog_bytes,
            hub_connected=self.hub_connected,
            dropped_invalid=self.dropped_invalid,
            dropped_full=self.dropped_full,
            submit_failed=self.submit_failed,
            errors=self.errors,
        )


@dataclass(frozen=True, slots=True)
class DownlinkStats:
    """A snapshot of the downlink."""

    received: int = 0
    applied: int = 0
    refused: int = 0
    """Refused by a check (hash, schema, addressee) or by the handler (RuleError…)."""
    handler_errors: int = 0
    """Unexpected handler exceptions; the message is redelivered a few times."""
    hub_connected: bool = False


class DownlinkCounters:
    __slots__ = ("applied", "handler_errors", "hub_connected", "received", "refused")

    def __init__(self) -> None:
        self.received = 0
        self.applied = 0
        self.refused = 0
        self.handler_errors = 0
        self.hub_connected = False

    def snapshot(self) -> DownlinkStats:
        return DownlinkStats(
            received=self.received,
            applied=self.applied,
            refused=self.refused,
            handler_errors=self.handler_errors,
            hub_connected=self.hub_connected,
        )
