"""The session lease in the hub KV bucket `leases`: who owns a session, and its epoch.

Key: the session id. Value: `LeaseValue` as JSON (readable with `nats kv get leases S`).

**Epoch.** The lease's KV revision is the fencing token (DESIGN "Edge handoff"). Renewals
are writes too, so the revision moves on every renewal; the epoch is the revision of the
write that *acquired* the lease (created, flipped to a new owner, or reclaimed). That
write carries `epoch: 0`, meaning "this revision"; renewals carry it explicitly. A later
acquisition always has a higher revision than any earlier write (a bucket is one stream,
and stream sequences only grow, ADR-8), so each new owner's epoch is higher than every
epoch before it.

**Compare-and-set.** Every write carries `Nats-Expected-Last-Subject-Sequence` (what
`kv.update(key, value, last=revision)` sends; 0 for a create): two writers never both win.
Writes go to `$JS.hub.API.$KV.leases.<key>`, not `$KV.leases.<key>`: the edge reaches
the hub through its leaf node, another JetStream domain, and nats-server carries only
the domain-prefixed form of a KV put across (nats.go's `useJSPfx`; nats-py's KeyValue
does not, so reads and watches use it and writes are ours).

**Expiry.** We do not rely on the bucket's own `max_age` (`LEASE_TTL_S`, made by
`ensure_hub`): it removes a key without a marker, so nobody hears of it, and it is fixed
when the bucket is created. Each lease carries its own `ttl_ms` (at most the bucket's, so
the bucket's age limit only collects leases nobody renews any more), and expiry is judged
without comparing clocks across machines, by the rule "a lease not renewed for TTL is
expired" (see `keeper` and `board`): the holder counts from when it *sent* its last
successful renewal, an observer from when it *saw* that revision, which is later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import subjects
from shared.errors import TransportError
from shared.messages.base import Count, GatewayId
from shared.session.errors import LeaseLost, NotOwner
from shared.session.owner import Owner, Side
from shared.session.snapshot import SnapRef

log = logging.getLogger(__name__)

# JetStream error codes of a failed expected-last-sequence check.
_WRONG_LAST = (10071, 10164)
# A delete/purge marker, or a server expiry marker (nats-server 2.11+, ADR-43).
_REMOVED = ("KV-Operation", "Nats-Marker-Reason")


class LeaseValue(BaseModel):
    """What the KV entry says about its session."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    owner: str = Field(min_length=3, max_length=80)
    side: Side
    gw: GatewayId
    ttl_ms: int = Field(strict=True, gt=0)
    epoch: Count = 0
    prev: str | None = None
    # The snapshot the owner loaded (or must load) and where the event log stood then.
    snap: SnapRef | None = None
    log_pos: Count = 0
    last_seq: Count = 0
    reason: str = Field(default="", max_length=200)

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()


@dataclass(frozen=True, slots=True)
class Lease:
    """One revision of a session's lease."""

    session: str
    value: LeaseValue
    revision: int

    @property
    def epoch(self) -> int:
        return self.value.epoch or self.revision

    @property
    def owner(self) -> Owner:
        return Owner.parse(self.value.owner)

    @property
    def ttl_s(self) -> float:
        return self.value.ttl_ms / 1000.0


def decode_value(data: bytes | None) -> LeaseValue | None:
    """The value, or None (logged) when it is not a lease we can read."""
    try:
        return LeaseValue.model_validate_json(data or b"")
    except ValidationError as exc:
        log.warning("unreadable lease value: %s", exc.errors(include_url=False)[0]["msg"])
        return None


class LeaseStore:
    """Reads (nats-py's KeyValue) and compare-and-set writes of the `leases` bucket."""

    def __init__(
        self, js: JetStreamContext, kv: KeyValue, *, bucket_ttl_s: float | None = None
    ) -> None:
        self.kv = kv
        self.bucket_ttl_s = bucket_ttl_s
        self._js = js
        self._stream = f"KV_{subjects.LEASES_BUCKET}"
        self._key_prefix = f"$KV.{subjects.LEASES_BUCKET}."
        self._put_prefix = f"$JS.{subjects.HUB_DOMAIN}.API.$KV.{subjects.LEASES_BUCKET}."

    async def get(self, session: str) -> Lease | None:
        try:
            entry = await self.kv.get(session)
        except KeyNotFoundError:
            return None
        except (nats.errors.Error, APIError) as exc:
            raise TransportError(f"reading lease {session}: {exc!r}") from exc
        value = decode_value(entry.value)
        if value is None or entry.revision is None:
            return None
        return Lease(session, value, entry.revision)

    async def acquire(self, session: str, value: LeaseValue, last: Lease | None) -> Lease:
        """Take the lease as a new owner (a new epoch): create it when `last` is None,
        else CAS on `last.revision`. Raises `NotOwner` when someone else holds it."""
        value = value.model_copy(update={"epoch": 0})
        if last is not None:
            try:
                return await self._write(session, value, last.revision)
            except LeaseLost:
                pass  # renewed meanwhile, or collected by the bucket's max_age: look again
        removed_at = await self._removed_at(session)
        if removed_at is None:
            current = await self.get(session)
            raise NotOwner(session, current.value.owner if current else None)
        try:
            return await self._write(session, value, removed_at)
        except LeaseLost:
            current = await self.get(session)
            raise NotOwner(session, current.value.owner if current else None) from None

    async def renew(self, lease: Lease, **changes: object) -> Lease:
        """The same owner and epoch, a fresh revision. Raises `LeaseLost`."""
        value = lease.value.model_copy(update={"epoch": lease.epoch, **changes})
        return await self._write(lease.session, value, lease.revision)

    async def hand_over(self, lease: Lease, value: LeaseValue) -> Lease:
        """CAS the lease to a new owner: the returned lease's revision is its epoch."""
        value = value.model_copy(update={"epoch": 0})
        return await self._write(lease.session, value, lease.revision)

    async def release(self, lease: Lease) -> None:
        """Delete the lease if it is still this revision (a session that has ended)."""
        try:
            await self._publish(lease.session, b"", lease.revision, {"KV-Operation": "DEL"})
        except LeaseLost:
            log.info("lease of %s had already moved on", lease.session)

    async def _write(self, session: str, value: LeaseValue, last: int) -> Lease:
        revision = await self._publish(session, value.encode(), last, {})
        return Lease(session, value, revision)

    async def _publish(self, key: str, data: bytes, last: int, extra: dict[str, str]) -> int:
        headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last), **extra}
        try:
            ack = await self._js.publish(self._put_prefix + key, data, headers=headers)
        except APIError as exc:
            if exc.err_code in _WRONG_LAST:
                raise LeaseLost(key, f"revision {last} is no longer current") from exc
            raise TransportError(f"writing lease {key}: {exc!r}") from exc
        except nats.errors.Error as exc:
            raise TransportError(f"writing lease {key}: {exc!r}") from exc
        return ack.seq

    async def _removed_at(self, key: str) -> int | None:
        """The revision to create over: 0 for a key never written (or aged out by the
        bucket's max_age), a delete/expiry marker's revision, None while a value lives."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._key_prefix + key)
        except NotFoundError:
            return 0
        except nats.errors.Error as exc:
            raise TransportError(f"reading lease {key}: {exc!r}") from exc
        headers = msg.headers or {}
        return (msg.seq or 0) if any(name in headers for name in _REMOVED) else None
