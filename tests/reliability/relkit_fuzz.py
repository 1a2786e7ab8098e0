"""Strategies and plumbing of the fuzzing tests.

    payloads(cls)       bytes a decoder of `cls` may meet: valid messages, the same with
                        bytes flipped, cut or appended, well-framed envelopes with hostile
                        fields (msgpack and JSON), garbage, and the odd oversize one
    subjects_near(...)  subjects close to a valid pattern (wrong levels, ids, kinds)
    fleet_messages()    (subject, payload) of FLEET: half of them a matching, valid message
                        (sometimes damaged), half near misses
    downlink_messages() the same for DOWNLINK (commands, desired state, rules, models)
    reading_messages()  (topic, payload) a device sends its gateway's leaf
    publishable(s)      whether NATS can carry `s` as a subject (no wildcard, no space)
    LoopBridge          run the test's coroutines from the worker thread a hypothesis test
                        runs in, so @given can drive real servers on the test's loop

The message strategies are tests/shared/test_shared_codec.py's (one per message class).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgpack
from hypothesis import strategies as st

from shared import subjects
from shared.codec import MAX_MESSAGE_BYTES, encode, encode_json
from shared.messages import (
    SCHEMA_VERSION,
    Command,
    CommandAck,
    Decision,
    DesiredState,
    GatewayEvent,
    Message,
    ModelUpdate,
    Reading,
    ReportedState,
    RulesUpdate,
    rules_digest,
)
from tests.shared.test_shared_codec import STRATEGIES, field_names, hostile_values

T = TypeVar("T")
WAIT_S = 30.0

# The reasons a payload can be refused for, by layer (each a counter label).
CODEC_REASONS = frozenset(
    {"too_large", "malformed", "schema_version", "unknown_kind", "invalid", "non_finite"}
)
EDGE_REASONS = CODEC_REASONS | {"device_mismatch"}
FACT_REASONS = CODEC_REASONS | {
    "bad_subject",
    "bad_hlc",
    "clock_drift",
    "gateway_mismatch",
    "device_mismatch",
    "bad_status",
}
KINDS = sorted({cls.kind for cls in STRATEGIES})


def _flip(wire: bytes, data: st.DataObject) -> bytes:
    out = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        pos = data.draw(st.integers(0, len(out) - 1), label="pos")
        out[pos] = data.draw(st.integers(0, 255), label="byte")
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, cls: type[Message]) -> bytes:
    """A valid message of `cls`, then cut, flipped or extended (or left alone)."""
    msg = draw(STRATEGIES[cls])
    wire = draw(st.sampled_from([encode, encode_json]))(msg)
    how = draw(st.sampled_from(["keep", "cut", "flip", "append"]))
    if how == "cut":
        return wire[: draw(st.integers(0, len(wire) - 1))]
    if how == "flip":
        return _flip(wire, draw(st.data()))
    if how == "append":
        return wire + draw(st.binary(min_size=1, max_size=16))
    return wire


@st.composite
def hostile_envelope(draw: st.DrawFn, kind: str | None = None) -> bytes:
    """The right `v` and a `kind` (this one or any), fields from the hostile set."""
    fields = draw(st.dictionaries(field_names, hostile_values, max_size=10))
    payload = {
        **fields,
        "v": draw(st.sampled_from([SCHEMA_VERSION, SCHEMA_VERSION, 0, 2, "1", None])),
        "kind": kind if kind is not None else draw(st.sampled_from([*KINDS, "nope", 7])),
    }
    if draw(st.booleans()):
        try:
            return json.dumps(payload).encode()
        except (TypeError, ValueError):
            pass  # bytes are not JSON: send it as msgpack
    packed: bytes = msgpack.packb(payload, use_bin_type=True)
    return packed


oversize = st.integers(1, 64).map(lambda extra: b"\x91" * (MAX_MESSAGE_BYTES + extra))
garbage = st.binary(max_size=512) | st.text(max_size=128).map(str.encode)


def payloads(cls: type[Message] | None = None) -> st.SearchStrategy[bytes]:
    """Bytes for a decoder that expects `cls` (None: any kind)."""
    classes = [cls] if cls is not None else list(STRATEGIES)
    kind = cls.kind if cls is not None else None
    return st.one_of(
        st.sampled_from(classes).flatmap(mutated),
        hostile_envelope(kind),
        hostile_envelope(None),
        garbage,
        oversize,
    )


def subjects_near(prefix: str, kinds: list[str], ids: list[str]) -> st.SearchStrategy[str]:
    """`prefix.<id>.<kind>.<id>`-like subjects, with levels added, dropped or wrong."""
    token = st.sampled_from(ids) | st.from_regex(r"[A-Za-z0-9_*>$#+/ -]{0,12}", fullmatch=True)
    kind = st.sampled_from(kinds) | token
    good = st.tuples(st.just(prefix), st.sampled_from(ids), kind, st.sampled_from(ids))
    odd = st.lists(token | kind, min_size=0, max_size=6).map(lambda parts: [prefix, *parts])
    return (good.map(list) | odd).map(".".join)


GATEWAYS = ["gw1", "gw2"]
DEVICES = ["dev-a", "pump1"]
IDS = [*GATEWAYS, *DEVICES]
# The object a valid ModelUpdate names, and its bytes (fuzz tests serve it).
MODEL_OBJECT = "m1"
MODEL_BYTES = b"onnx bytes"

# What a FLEET message of each subject kind carries, and which fields name its sender.
_FLEET_BODY: dict[str, type[Message]] = {
    "r": Reading,
    "twin": ReportedState,
    "ack": CommandAck,
    "dec": Decision,
    "ev": GatewayEvent,
}


def _addressed(msg: Message, **names: str) -> Message:
    """`msg` with its device / gw fields set to `names` where the class has them."""
    update = {k: v for k, v in names.items() if k in type(msg).model_fields}
    return msg.model_copy(update=update)


@st.composite
def _damaged(draw: st.DrawFn, msg: Message) -> bytes:
    wire = draw(st.sampled_from([encode, encode_json]))(msg)
    if draw(st.integers(0, 3)):  # mostly intact
        return wire
    return _flip(wire, draw(st.data()))


@st.composite
def _aligned_fleet(draw: st.DrawFn) -> tuple[str, bytes]:
    gw, device = draw(st.sampled_from(GATEWAYS)), draw(st.sampled_from(DEVICES))
    kind = draw(st.sampled_from([*_FLEET_BODY, "status"]))
    subject = subjects.fleet(gw, kind, device)
    if kind == "status":
        return subject, draw(st.sampled_from([b"online", b"offline", b"maybe"]))
    msg = draw(STRATEGIES[_FLEET_BODY[kind]])
    names = {"gw": gw} if kind == "ev" else {"gw": gw, "device": device}
    if kind == "r" and draw(st.booleans()):
        msg = msg.model_copy(update={"hlc": None})  # stamped by the header or ts_ms
    return subject, draw(_damaged(_addressed(msg, **names)))


def fleet_messages() -> st.SearchStrategy[tuple[str, bytes]]:
    near = st.tuples(subjects_near("fleet", list(subjects.UPLINK_TYPES), IDS), payloads(None))
    return _aligned_fleet() | near


@st.composite
def _aligned_downlink(draw: st.DrawFn, gw: str) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["cmd", "desired", "rules", "model"]))
    device = draw(st.sampled_from(DEVICES))
    if kind == "cmd":
        msg: Message = _addressed(draw(STRATEGIES[Command]), device=device, gw=gw)
        return f"downlink.{gw}.cmd.{device}", draw(_damaged(msg))
    if kind == "desired":
        msg = _addressed(draw(STRATEGIES[DesiredState]), device=device, gw=gw)
        return f"downlink.{gw}.desired.{device}", draw(_damaged(msg))
    if kind == "rules":
        update = draw(STRATEGIES[RulesUpdate])
        if draw(st.booleans()):
            update = update.model_copy(update={"sha256": rules_digest(update.rules)})
        return f"downlink.{gw}.rules", draw(_damaged(_addressed(update, gw=gw)))
    model = draw(STRATEGIES[ModelUpdate])
    if draw(st.booleans()):
        digest = hashlib.sha256(MODEL_BYTES).hexdigest()
        model = model.model_copy(update={"object_name": MODEL_OBJECT, "sha256": digest})
    return f"downlink.{gw}.model", draw(_damaged(_addressed(model, gw=gw)))


def downlink_messages(gw: str) -> st.SearchStrategy[tuple[str, bytes]]:
    kinds = ["cmd", "desired", "rules", "model"]
    near = st.tuples(
        subjects_near("downlink", kinds, IDS).filter(lambda s: s.startswith(f"downlink.{gw}."))
        | subjects_near("downlink", kinds, IDS),
        payloads(Command) | payloads(DesiredState) | payloads(RulesUpdate) | payloads(ModelUpdate),
    )
    return _aligned_downlink(gw) | near


@st.composite
def _aligned_reading(draw: st.DrawFn) -> tuple[str, bytes]:
    device = draw(st.sampled_from(DEVICES))
    msg = _addressed(draw(STRATEGIES[Reading]), device=device)
    return f"baton.d.{device}.r", draw(_damaged(msg))


def reading_messages() -> st.SearchStrategy[tuple[str, bytes]]:
    topics = st.sampled_from([f"baton.d.{device}.r" for device in DEVICES])
    return _aligned_reading() | st.tuples(topics, payloads(Reading))


def publishable(subject: str) -> bool:
    return all(token and not set(token) & set("*> \t\r\n") for token in subject.split("."))


class LoopBridge:
    """Hypothesis runs @given in a worker thread (`asyncio.to_thread`); each example hands
    its coroutine to the test's own loop, where the servers and clients live."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = WAIT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)
