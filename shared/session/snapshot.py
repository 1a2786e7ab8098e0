"""Session snapshots on the hub, in the SESSIONS stream.

    session.<id>.snap          one message per snapshot, newest last: the msgpack
                               `SessionSnapshot` itself (up to INLINE_MAX_BYTES), or, for a
                               bigger one, an empty body with `Baton-Blob: <nuid>`
    session.<id>.blob.<nuid>   the big snapshot in CHUNK_BYTES chunks (`Baton-Chunk: i`)

A snapshot is written durably *before* the lease flips (see `handoff`), so whoever holds
the lease next can always load the conversation. `.snap` messages are appended by
compare-and-set on the subject's last sequence (`Nats-Expected-Last-Subject-Sequence`),
like the event log: a fenced-out owner cannot overwrite its successor's checkpoint.

Why not the hub's Object Store `snapshots`: the edge writes through its leaf node, which
is another JetStream domain, and nats-server carries a client's `$JS.<domain>.API.$KV.>`
puts to the other domain but not `$O.>` ones (no responders from the leaf). The SESSIONS
stream takes publishes from both sides, and chunks published back to back (not one
PubAck at a time, as `ObjectStore.put` does) store 4 MiB in ~25-40 ms; they are read
with a pull consumer in batches. A session's older blobs are purged once a newer
snapshot is durable.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import uuid
from typing import Final

import msgpack
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import APIError, NotFoundError
from pydantic import BaseModel, ConfigDict, ValidationError

from shared import subjects
from shared.codec import encode
from shared.errors import DecodeError, TransportError
from shared.messages import SUPPORTED_VERSIONS, SessionSnapshot
from shared.messages.base import Count
from shared.session.errors import LeaseLost, SnapshotError
from shared.session.frames import refuse_ext

log = logging.getLogger(__name__)

# One NATS message carries snapshots up to this size (the codec's limit is 256 KiB and
# NATS' default max_payload 1 MiB); bigger ones go as a blob of chunks.
INLINE_MAX_BYTES: Final = 200 * 1024
CHUNK_BYTES: Final = 128 * 1024
# The largest snapshot we accept at all: a conversation far beyond any model's context.
MAX_SNAPSHOT_BYTES: Final = 64 * 1024 * 1024
BLOB_HEADER: Final = "Baton-Blob"
SIZE_HEADER: Final = "Baton-Size"
DIGEST_HEADER: Final = "Baton-Digest"
EPOCH_HEADER: Final = "Baton-Epoch"
CHUNK_HEADER: Final = "Baton-Chunk"
# The event log's position at the snapshot: a reclaimer reads the log from there on.
LOG_POS_HEADER: Final = "Baton-Log-Pos"
# Chunks per pull: 32 x 128 KiB is 4 MiB in one round trip.
_PULL_BATCH: Final = 32
_PULL_TIMEOUT_S: Final = 5.0
# A pull consumer we forget (an error mid-read) is removed by the server after this.
_CONSUMER_IDLE_S: Final = 10.0


class SnapRef(BaseModel):
    """Where one snapshot lives: its `.snap` message, and its blob when it is big."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: Count  # stream sequence of the `.snap` message
    size: Count
    blob: str | None = None  # the nuid of `session.<id>.blob.<nuid>`
    digest: str = ""  # SHA-256 of a blob, urlsafe base64
    # The event log position (stream sequence) at the time of the snapshot: a reader
    # of the events after `SessionSnapshot.last_seq` can start there.
    log_pos: Count = 0


def snap_subject(session: str) -> str:
    return f"session.{session}.snap"


def blob_subject(session: str, nuid: str) -> str:
    return f"session.{session}.blob.{nuid}"


def encode_snapshot(snapshot: SessionSnapshot) -> bytes:
    return encode(snapshot)


def decode_snapshot(data: bytes) -> SessionSnapshot:
    """Check a snapshot as `shared.codec.decode` checks a message, without its scan of
    the payload for msgpack timestamps (a regex costing ~20 ms per MiB of text here):
    msgpack hands a timestamp over as `msgpack.Timestamp`, which no field accepts."""
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"snapshot of {len(data)} bytes > {MAX_SNAPSHOT_BYTES}")
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=refuse_ext)
    except (DecodeError, ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise SnapshotError(f"snapshot is not msgpack: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("v") not in SUPPORTED_VERSIONS:
        raise SnapshotError("snapshot has no schema version this build speaks")
    if raw.get("kind") != SessionSnapshot.kind:
        raise SnapshotError(f"kind {raw.get('kind')!r} is not a session snapshot")
    try:
        return SessionSnapshot.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SnapshotError(f"snapshot refused: {where}: {first['msg']}") from exc


class SnapshotStore:
    """Writes and reads snapshots of any session."""

    def __init__(self, js: JetStreamContext, *, inline_max: int = INLINE_MAX_BYTES) -> None:
        self._js = js
        self._inline_max = inline_max

    async def put(
        self, session: str, data: bytes, *, epoch: int, last: int, log_pos: int = 0
    ) -> SnapRef:
        """Store `data` durably; `last` is the `.snap` subject's sequence we expect
        (0: none yet). Raises `LeaseLost` when someone else wrote since."""
        headers = {
            EPOCH_HEADER: str(epoch),
            LOG_POS_HEADER: str(log_pos),
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last),
        }
        blob, digest = None, ""
        if len(data) > self._inline_max:
            blob, digest = await self._put_blob(session, data)
            headers |= {BLOB_HEADER: blob, SIZE_HEADER: str(len(data)), DIGEST_HEADER: digest}
        try:
            body = b"" if blob else data
            ack = await self._js.publish(snap_subject(session), body, headers=headers)
        except APIError as exc:
            if exc.err_code in (10071, 10164):
                raise LeaseLost(session, "a newer owner wrote a snapshot") from exc
            raise TransportError(f"writing snapshot of {session}: {exc!r}") from exc
        except nats.errors.Error as exc:
            raise TransportError(f"writing snapshot of {session}: {exc!r}") from exc
        return SnapRef(seq=ack.seq, size=len(data), blob=blob, digest=digest, log_pos=log_pos)

    async def read(self, session: str, ref: SnapRef) -> bytes:
        if ref.blob is not None:
            data = await self._read_blob(blob_subject(session, ref.blob), ref.size)
            _check_digest(ref.blob, data, ref.digest)
            return data
        try:
            msg = await self._js.get_msg(subjects.SESSIONS_STREAM, seq=ref.seq)
        except NotFoundError as exc:
            raise SnapshotError(f"snapshot message {ref.seq} is gone") from exc
        except nats.errors.Error as exc:
            raise TransportError(f"reading snapshot {ref.seq}: {exc!r}") from exc
        return msg.data or b""

    async def latest(self, session: str) -> SnapRef | None:
        """The newest `.snap` of a session, or None when it never had one."""
        try:
            msg = await self._js.get_msg(subjects.SESSIONS_STREAM, subject=snap_subject(session))
        except NotFoundError:
            return None
        except nats.errors.Error as exc:
            raise TransportError(f"finding snapshot of {session}: {exc!r}") from exc
        headers = msg.headers or {}
        blob = headers.get(BLOB_HEADER)
        size = int(headers.get(SIZE_HEADER, "0")) if blob else len(msg.data or b"")
        digest = headers.get(DIGEST_HEADER, "")
        log_pos = headers.get(LOG_POS_HEADER, "0")  # 0: an older writer; read the whole log
        return SnapRef(
            seq=msg.seq or 0, size=size, blob=blob, digest=digest,
            log_pos=int(log_pos) if log_pos.isdigit() else 0,
        )  # fmt: skip

    async def drop_blob(self, session: str, blob: str) -> None:
        """Purge an old snapshot's chunks; a failure only leaves garbage behind."""
        try:
            await self._js.purge_stream(
                subjects.SESSIONS_STREAM, subject=blob_subject(session, blob)
            )
        except nats.errors.Error as exc:
            log.info("old snapshot blob %s not purged: %r", blob, exc)

    async def _put_blob(self, session: str, data: bytes) -> tuple[str, str]:
        nuid = uuid.uuid4().hex
        subject = blob_subject(session, nuid)
        publishes = [
            self._js.publish(subject, data[at : at + CHUNK_BYTES], headers={CHUNK_HEADER: str(i)})
            for i, at in enumerate(range(0, len(data), CHUNK_BYTES))
        ]
        try:
            # Back to back on one connection: stored in order, one round trip overall.
            await asyncio.gather(*publishes)
        except nats.errors.Error as exc:
            raise TransportError(f"writing snapshot blob of {session}: {exc!r}") from exc
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        return nuid, digest

    async def _read_blob(self, subject: str, size: int) -> bytes:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=_CONSUMER_IDLE_S,
        )
        chunks: dict[int, bytes] = {}
        got = 0
        try:
            sub = await self._js.pull_subscribe(
                subject, stream=subjects.SESSIONS_STREAM, config=config
            )
            try:
                while got < size:
                    for msg in await sub.fetch(_PULL_BATCH, timeout=_PULL_TIMEOUT_S):
                        chunks[int((msg.headers or {}).get(CHUNK_HEADER, len(chunks)))] = msg.data
                        got += len(msg.data)
            finally:
                await sub.unsubscribe()
        except nats.errors.Error as exc:
            raise TransportError(f"reading snapshot blob {subject}: {exc!r}") from exc
        return b"".join(chunks[i] for i in sorted(chunks))


def _check_digest(name: str, data: bytes, digest: str) -> None:
    if digest and base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode() != digest:
        raise SnapshotError(f"snapshot blob {name} fails its SHA-256 digest")
