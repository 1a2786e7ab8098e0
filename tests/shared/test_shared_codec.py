"""The wire codec: every message round-trips, and every bad payload gets its typed error.

What a user notices: a gateway and the cloud agree on every byte they exchange, and a
broken sensor, a truncated MQTT frame or a hostile client is refused with a counter label
(`.reason`) and a field name (`.field`) — never a crash with some other exception.
"""

from __future__ import annotations

import json
import math
from typing import Any, get_args

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.codec import MAX_MESSAGE_BYTES, decode, encode, encode_json
from shared.errors import (
    BatonError,
    DecodeError,
    InvalidMessage,
    MalformedPayload,
    NonFiniteValue,
    PayloadTooLarge,
    UnknownKind,
    UnsupportedSchema,
)
from shared.messages import (
    AGENT_EVENT_TYPES,
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentStart,
    AgentSwitch,
    ChatMessage,
    Command,
    CommandAck,
    Compensation,
    ContentChunk,
    Decision,
    DesiredState,
    GatewayEvent,
    HandoffAbort,
    HandoffAccept,
    HandoffComplete,
    HandoffRequest,
    HandoffSnapshot,
    Message,
    ModelUpdate,
    Plan,
    PlanStep,
    Reading,
    ReportedState,
    RulesUpdate,
    SessionSnapshot,
    ToolExecution,
    ToolResult,
    TwinState,
    rules_digest,
)
from shared.messages.plan import PlanStatus, StepStatus

# --- strategies ----------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z0-9_.:-]{0,63}", fullmatch=True)
reals = st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**63 - 1)
millis = st.integers(min_value=0, max_value=2**53)
short_text = st.text(max_size=24)
# msgpack carries integers in [-2**63, 2**64 - 1]; see test_json_integer_beyond_msgpack_range.
wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.none() | st.booleans() | wire_ints | reals | short_text
params = st.dictionaries(short_text, scalars, max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(short_text, json_values, max_size=4)
sides = st.sampled_from(["edge", "cloud"])
sha256s = st.binary(min_size=32, max_size=32).map(bytes.hex)


def _hex(bits: int) -> st.SearchStrategy[str]:
    # Never all-zero: W3C trace-context §3.2.2 makes those ids invalid.
    return st.integers(min_value=1, max_value=2**bits - 1).map(lambda n: f"{n:0{bits // 4}x}")


traceparents = st.builds(
    lambda trace, span, flags: f"00-{trace}-{span}-{flags}", _hex(128), _hex(64), _hex(8)
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


commands = st.builds(
    Command,
    traceparent=traceparents,
    cmd_id=st.text(min_size=1, max_size=64),
    device=ids,
    gw=_opt(ids),
    action=names,
    params=params,
    issued_ms=millis,
    deadline_ms=millis,
    epoch=counts,
    source=st.text(max_size=128),
    session=_opt(ids),
)
plan_steps = st.builds(
    PlanStep,
    step_id=short_text,
    index=counts,
    gw=ids,
    device=ids,
    action=names,
    params=params,
    preconditions=st.lists(short_text, max_size=3),
    deadline_ms=millis,
    compensation=_opt(st.builds(Compensation, action=names, params=params)),
    status=st.sampled_from(get_args(StepStatus)),
)
chat_messages = st.builds(
    ChatMessage,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.text(max_size=64),
    name=_opt(short_text),
    ts_ms=millis,
)

MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Any]] = {
    Reading: st.builds(
        Reading,
        traceparent=traceparents,
        device=ids,
        seq=counts,
        ts_ms=millis,
        metrics=st.dictionaries(names, reals, min_size=1, max_size=6),
        dclass=_opt(names),
        gw=_opt(ids),
        hlc=_opt(counts),
    ),
    Command: commands,
    GatewayEvent: st.builds(
        GatewayEvent,
        traceparent=traceparents,
        gw=ids,
        device=_opt(ids),
        type=names,
        data=st.dictionaries(short_text, st.integers(0, 1000) | short_text, max_size=4),
        ts_ms=millis,
    ),
    CommandAck: st.builds(
        CommandAck,
        traceparent=traceparents,
        cmd_id=st.text(min_size=1, max_size=64),
        device=ids,
        ok=st.booleans(),
        reason=_opt(short_text),
        epoch=counts,
        ts_ms=millis,
    ),
    Decision: st.builds(
        Decision,
        traceparent=traceparents,
        decision_id=short_text,
        gw=ids,
        device=ids,
        source=st.sampled_from(["rule", "model"]),
        name=names,
        version=st.text(max_size=64),
        inputs=st.dictionaries(short_text, reals, max_size=5),
        score=_opt(reals),
        threshold=_opt(reals),
        command=_opt(commands),
        latency_us=counts,
        ts_ms=millis,
        hlc=_opt(counts),
        reading_seq=_opt(counts),
    ),
    DesiredState: st.builds(
        DesiredState,
        traceparent=traceparents,
        device=ids,
        gw=ids,
        version=counts,
        state=params,
        epoch=counts,
        ts_ms=millis,
    ),
    ReportedState: st.builds(
        ReportedState,
        traceparent=traceparents,
        device=ids,
        gw=ids,
        applied_version=counts,
        state=params,
        ts_ms=millis,
        hlc=_opt(counts),
        refused_version=_opt(counts),
        reason=_opt(short_text),
    ),
    TwinState: st.builds(
        TwinState,
        traceparent=traceparents,
        device=ids,
        gw=ids,
        desired=params,
        desired_version=counts,
        reported=params,
        reported_version=counts,
        online=st.booleans(),
        last_seen_ms=millis,
        updated_ms=millis,
    ),
    SessionSnapshot: st.builds(
        SessionSnapshot,
        traceparent=traceparents,
        session=ids,
        gw=ids,
        epoch=counts,
        owner=sides,
        messages=st.lists(chat_messages, max_size=4),
        memory=json_objects,
        tool_state=json_objects,
        pending=st.lists(json_objects, max_size=3),
        cursors=st.dictionaries(short_text, counts, max_size=3),
        last_seq=counts,
        created_ms=millis,
    ),
    Plan: st.builds(
        Plan,
        traceparent=traceparents,
        plan_id=short_text,
        trigger=st.text(max_size=128),
        reason=st.text(max_size=64),
        planner=st.text(max_size=64),
        steps=st.lists(plan_steps, min_size=1, max_size=4),
        status=st.sampled_from(get_args(PlanStatus)),
        epoch=counts,
        created_ms=millis,
    ),
    RulesUpdate: st.builds(
        RulesUpdate,
        traceparent=traceparents,
        gw=ids,
        version=st.text(max_size=64),
        sha256=sha256s,
        rules=st.lists(json_objects, max_size=3),
    ),
    ModelUpdate: st.builds(
        ModelUpdate,
        traceparent=traceparents,
        gw=ids,
        name=names,
        version=st.text(max_size=64),
        object_name=st.text(max_size=256),
        sha256=sha256s,
        threshold=_opt(reals),
    ),
}


def _event(cls: type[AgentEventBase], **fields: Any) -> st.SearchStrategy[Any]:
    return st.builds(
        cls,
        traceparent=traceparents,
        session=ids,
        seq=counts,
        epoch=counts,
        agent=st.text(max_size=64),
        ts_ms=millis,
        **fields,
    )


EVENT_STRATEGIES: dict[type[Message], st.SearchStrategy[Any]] = {
    AgentStart: _event(AgentStart, model=_opt(short_text)),
    AgentSwitch: _event(AgentSwitch, from_agent=short_text, to_agent=short_text, reason=short_text),
    ContentChunk: _event(ContentChunk, text=st.text(max_size=200)),
    ToolExecution: _event(ToolExecution, call_id=short_text, tool=short_text, args=json_objects),
    ToolResult: _event(
        ToolResult, call_id=short_text, tool=short_text, ok=st.booleans(), result=json_values
    ),
    AgentComplete: _event(AgentComplete, text=short_text, tokens=counts),
    AgentError: _event(AgentError, code=short_text, message=short_text, retryable=st.booleans()),
    HandoffRequest: _event(HandoffRequest, to=sides, reason=short_text),
    HandoffSnapshot: _event(HandoffSnapshot, size=counts, object_name=_opt(short_text)),
    HandoffAccept: _event(HandoffAccept, owner=sides),
    HandoffComplete: _event(HandoffComplete, owner=sides, latency_ms=reals),
    HandoffAbort: _event(HandoffAbort, reason=short_text),
}

STRATEGIES = {**MESSAGE_STRATEGIES, **EVENT_STRATEGIES}
ALL_CLASSES = [*MESSAGE_TYPES, *AGENT_EVENT_TYPES]
any_message = st.one_of(*STRATEGIES.values())
REASONS = {"too_large", "malformed", "schema_version", "unknown_kind", "invalid", "non_finite"}

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _name(cls: type[Message]) -> str:
    return cls.__name__


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _as_json(obj: Any) -> bytes:
    # allow_nan=True (the default) on purpose: this is what a careless client sends.
    return json.dumps(obj).encode()


WIRE_FORMATS = [pytest.param(_pack, id="msgpack"), pytest.param(_as_json, id="json")]


def _reading_wire(**changes: Any) -> dict[str, Any]:
    wire = Reading(device="dev-1", seq=7, ts_ms=1_700_000_000_000, metrics={"temp": 21.5}).to_wire()
    wire.update(changes)
    return wire


def _reject(data: bytes, error: type[DecodeError], **kwargs: Any) -> DecodeError:
    """Decode `data`, expecting exactly `error` (not a subclass) and its `.reason`."""
    with pytest.raises(error) as info:
        decode(data, **kwargs)
    assert type(info.value) is error
    assert info.value.reason == error.reason
    assert not info.value.retryable
    return info.value


# --- round trips ---------------------------------------------------------------------


def test_every_message_class_has_a_strategy() -> None:
    # A new message class must get a strategy here, or it is not round-trip tested.
    assert set(STRATEGIES) == set(ALL_CLASSES)
    assert len({cls.kind for cls in MESSAGE_TYPES}) == len(MESSAGE_TYPES)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_name)
@FAST
@given(data=st.data())
def test_msgpack_round_trip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    wire = encode(msg)

    packed = msgpack.unpackb(wire, raw=False)
    assert packed["kind"] == cls.kind
    assert packed["v"] == SCHEMA_VERSION
    if isinstance(msg, AgentEventBase):
        assert packed["kind"] == "agent_event"
        assert packed["type"] == msg.type

    decoded = decode(wire)
    assert type(decoded) is cls
    assert decoded == msg
    assert decode(wire, cls) == msg
    assert encode(decoded) == wire


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_name)
@FAST
@given(data=st.data())
def test_json_round_trip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    wire = encode_json(msg)

    parsed = json.loads(wire)
    assert parsed["kind"] == cls.kind
    assert parsed["v"] == SCHEMA_VERSION

    decoded = decode(wire)
    assert type(decoded) is cls
    assert decoded == msg
    assert decode(wire, cls) == msg
    # Leading whitespace is still JSON (a pretty-printing client, a trailing newline).
    assert decode(b"\n  " + wire + b"\n") == msg


def test_decode_error_reasons_are_distinct_stable_labels() -> None:
    # The edge and cloud count rejections by these labels; renaming one breaks dashboards.
    errors = [
        PayloadTooLarge,
        MalformedPayload,
        UnsupportedSchema,
        UnknownKind,
        InvalidMessage,
        NonFiniteValue,
    ]
    assert {e.reason for e in errors} == REASONS
    assert all(issubclass(e, DecodeError) and issubclass(e, BatonError) for e in errors)
    assert issubclass(NonFiniteValue, InvalidMessage)


# --- truncation and garbage ----------------------------------------------------------


@pytest.mark.parametrize("encoder", [encode, encode_json], ids=["msgpack", "json"])
def test_every_prefix_of_every_kind_is_malformed(encoder: Any) -> None:
    for cls in ALL_CLASSES:
        wire = encoder(_SAMPLES[cls])
        for cut in range(len(wire)):
            err = _reject(wire[:cut], MalformedPayload)
            assert "malformed" in str(err)


@settings(max_examples=150, deadline=None)
@given(msg=any_message, json_form=st.booleans(), data=st.data())
def test_truncated_message_is_malformed(msg: Message, json_form: bool, data: st.DataObject) -> None:
    wire = encode_json(msg) if json_form else encode(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 1), label="cut")
    _reject(wire[:cut], MalformedPayload)


def _decode_only_typed_errors(data: bytes) -> None:
    try:
        msg = decode(data)
    except DecodeError as exc:
        assert exc.reason in REASONS
    else:
        assert isinstance(msg, Message)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512))
def test_garbage_bytes_raise_only_decode_errors(data: bytes) -> None:
    _decode_only_typed_errors(data)


@settings(max_examples=150, deadline=None)
@given(msg=any_message, data=st.data())
def test_corrupted_message_raises_only_decode_errors(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="flips")):
        pos = data.draw(st.integers(min_value=0, max_value=len(wire) - 1), label="pos")
        wire[pos] = data.draw(st.integers(min_value=0, max_value=255), label="byte")
    _decode_only_typed_errors(bytes(wire))


# Values msgpack can carry that no message field should accept blindly.
hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | wire_ints
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    sorted({name for cls in ALL_CLASSES for name in cls.model_fields} | {"type"})
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted({cls.kind for cls in ALL_CLASSES})),
    fields=st.dictionaries(field_names, hostile_values, max_size=10),
    json_form=st.booleans(),
)
def test_well_framed_hostile_fields_raise_only_decode_errors(
    kind: str, fields: dict[str, Any], json_form: bool
) -> None:
    # Right envelope, arbitrary fields: exercises validation and the error translation.
    payload = {**fields, "v": SCHEMA_VERSION, "kind": kind}
    if json_form:
        try:
            data = json.dumps(payload).encode()
        except (TypeError, ValueError):
            return  # bytes are not JSON; that case is covered by msgpack
    else:
        data = _pack(payload)
    _decode_only_typed_errors(data)


def test_trailing_bytes_after_a_message_are_malformed() -> None:
    msg = _SAMPLES[Reading]
    _reject(encode(msg) + b"\x00", MalformedPayload)
    _reject(encode_json(msg) + b"{}", MalformedPayload)


def test_invalid_utf8_string_is_malformed() -> None:
    wire = encode(_SAMPLES[Reading]).replace(b"dev-1", b"dev\xff1")
    _reject(wire, MalformedPayload)


def test_non_string_map_keys_are_malformed() -> None:
    _reject(_pack({**_reading_wire(), 1: "x"}), MalformedPayload)


# --- size limit ----------------------------------------------------------------------


def test_oversize_is_refused_before_parsing() -> None:
    # 0xc1 is never valid msgpack: had the codec parsed it, this would be MalformedPayload.
    _reject(b"\xc1" * (MAX_MESSAGE_BYTES + 1), PayloadTooLarge)
    _reject(b"{" * (MAX_MESSAGE_BYTES + 1), PayloadTooLarge)
    _reject(b"\xc1" * MAX_MESSAGE_BYTES, MalformedPayload)


def test_valid_message_over_the_limit_is_refused() -> None:
    msg = ContentChunk(session="s1", seq=1, text="x" * MAX_MESSAGE_BYTES)
    wire = encode(msg)
    assert len(wire) > MAX_MESSAGE_BYTES
    _reject(wire, PayloadTooLarge)
    assert decode(wire, max_bytes=len(wire)) == msg


def test_custom_max_bytes() -> None:
    msg = _SAMPLES[Reading]
    wire = encode(msg)
    assert decode(wire, max_bytes=len(wire)) == msg
    assert decode(wire, Reading, max_bytes=len(wire)) == msg
    err = _reject(wire, PayloadTooLarge, max_bytes=len(wire) - 1)
    assert str(len(wire)) in str(err)
    _reject(encode_json(msg), PayloadTooLarge, max_bytes=len(encode_json(msg)) - 1)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=256), slack=st.integers(min_value=1, max_value=256))
def test_any_payload_over_a_custom_limit_is_too_large(data: bytes, slack: int) -> None:
    _reject(data, PayloadTooLarge, max_bytes=max(0, len(data) - slack))


# --- envelope: top level, version, kind ----------------------------------------------


TOP_LEVEL_NON_MAPS = [[1, 2], [], ["device"], 7, 0, -1, True, None, 1.5, "reading", b"x"]


@pytest.mark.parametrize("top", TOP_LEVEL_NON_MAPS, ids=repr)
def test_msgpack_top_level_that_is_not_a_map(top: Any) -> None:
    err = _reject(_pack(top), InvalidMessage)
    assert err.field is None
    assert "map" in str(err)


@pytest.mark.parametrize("top", [b"[1,2]", b"[]", b" [{}]", b"\n[]"], ids=repr)
def test_json_top_level_array(top: bytes) -> None:
    _reject(top, InvalidMessage)


@pytest.mark.parametrize(
    "top", [b"7", b"42", b"-1", b"true", b"null", b"1.5", b'"reading"'], ids=repr
)
def test_json_top_level_scalar(top: bytes) -> None:
    # Only `{`, `[` or whitespace starts JSON; a bare scalar is read as msgpack, where it
    # is either a lone int (not a map) or an int followed by junk (malformed).
    with pytest.raises((InvalidMessage, MalformedPayload)):
        decode(top)


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize(
    "version", [0, 2, -1, 2**32, "1", 1.0, True, None, [1]], ids=lambda v: f"v={v!r}"
)
def test_unsupported_schema_version(encoder: Any, version: Any) -> None:
    err = _reject(encoder(_reading_wire(v=version)), UnsupportedSchema)
    assert "schema" in str(err)


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
def test_missing_schema_version(encoder: Any) -> None:
    wire = _reading_wire()
    del wire["v"]
    _reject(encoder(wire), UnsupportedSchema)


def test_schema_version_is_checked_before_kind() -> None:
    _reject(_pack(_reading_wire(v=2, kind="no_such_kind")), UnsupportedSchema)


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize(
    "kind", ["no_such_kind", "Reading", "READING", "", 5, None, ["reading"]], ids=repr
)
def test_unknown_kind(encoder: Any, kind: Any) -> None:
    _reject(encoder(_reading_wire(kind=kind)), UnknownKind)


def test_missing_kind() -> None:
    wire = _reading_wire()
    del wire["kind"]
    _reject(_pack(wire), UnknownKind)


def test_unknown_agent_event_type() -> None:
    wire = {**_SAMPLES[AgentStart].to_wire(), "type": "agent_dance"}
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "type"


def test_agent_event_without_type_names_the_type_field() -> None:
    wire = _SAMPLES[AgentStart].to_wire()
    del wire["type"]
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "type"


# --- decode(data, expect) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (Reading, Command),
        (Command, CommandAck),
        (DesiredState, ReportedState),
        (TwinState, DesiredState),
        (AgentStart, Reading),
        (Reading, AgentStart),
        (Plan, SessionSnapshot),
    ],
    ids=lambda c: c.__name__,
)
def test_expect_of_the_wrong_kind(sent: type[Message], expected: type[Message]) -> None:
    wire = encode(_SAMPLES[sent])
    err = _reject(wire, InvalidMessage, expect=expected)
    assert err.field == "kind"
    assert repr(expected.kind) in str(err)


def test_expect_of_the_wrong_agent_event_type() -> None:
    err = _reject(encode(_SAMPLES[AgentStart]), InvalidMessage, expect=ContentChunk)
    assert err.field == "type"


def test_expect_still_checks_the_envelope_first() -> None:
    _reject(_pack(_reading_wire(v=2)), UnsupportedSchema, expect=Reading)
    _reject(_pack(_reading_wire(kind="nope")), UnknownKind, expect=Reading)


# --- field validation ----------------------------------------------------------------


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize("value", ["41.2", "", True, False, None, [21.5], {"c": 21.5}], ids=repr)
def test_metric_of_the_wrong_type(encoder: Any, value: Any) -> None:
    err = _reject(encoder(_reading_wire(metrics={"temp": value})), InvalidMessage)
    assert err.field == "metrics.temp"
    assert "metrics.temp" in str(err)


def test_json_integer_metric_too_big_for_a_float_is_invalid() -> None:
    err = _reject(_as_json(_reading_wire(metrics={"temp": 10**400})), InvalidMessage)
    assert err.field == "metrics.temp"


def test_metric_as_msgpack_bytes_is_invalid() -> None:
    err = _reject(_pack(_reading_wire(metrics={"temp": b"21.5"})), InvalidMessage)
    assert err.field == "metrics.temp"


def test_integer_metric_is_accepted_as_a_float() -> None:
    # Firmware that prints `21` instead of `21.0` is not wrong.
    msg = decode(_pack(_reading_wire(metrics={"temp": 21})), Reading)
    assert msg.metrics == {"temp": 21.0}


@pytest.mark.parametrize(
    "metrics",
    [{}, {f"m{i}": 1.0 for i in range(33)}, {"Temp": 1.0}, {"1temp": 1.0}, {"": 1.0}],
    ids=["empty", "33-metrics", "uppercase-name", "digit-first", "empty-name"],
)
def test_bad_metrics_map(metrics: dict[str, float]) -> None:
    err = _reject(_pack(_reading_wire(metrics=metrics)), InvalidMessage)
    assert err.field is not None
    assert err.field.startswith("metrics")


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", "7"), ("seq", 7.0), ("seq", True), ("seq", -1), ("seq", 2**63), ("ts_ms", 2**53 + 1)],
    ids=repr,
)
def test_counter_of_the_wrong_type_or_range(field: str, value: Any) -> None:
    err = _reject(_pack(_reading_wire(**{field: value})), InvalidMessage)
    assert err.field == field


@pytest.mark.parametrize("missing", ["device", "seq", "ts_ms", "metrics"])
def test_missing_required_field(missing: str) -> None:
    wire = _reading_wire()
    del wire[missing]
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == missing


def test_unknown_fields_are_ignored() -> None:
    # A newer minor revision may add fields; an older decoder must still read the message.
    plain = _SAMPLES[Reading]
    wire = {**plain.to_wire(), "firmware": "2.1", "extra": {"a": [1, 2]}}
    assert decode(_pack(wire), Reading) == plain
    assert decode(_as_json(wire), Reading) == plain


BAD_IDS = [
    "../x",
    "a/b",
    "a.b",
    "+",
    "#",
    "*",
    ">",
    "dev ice",
    "dévice",
    "",
    "x" * 65,
    "-dev",
    "_dev",
    "dev\n",
    "dev\r\n",
    "dev\x00",
    "dev.>",
    "baton/d/+/r",
]


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize("device", BAD_IDS, ids=repr)
def test_bad_device_id(encoder: Any, device: str) -> None:
    err = _reject(encoder(_reading_wire(device=device)), InvalidMessage)
    assert err.field == "device"


def test_longest_device_id_is_accepted() -> None:
    assert decode(_pack(_reading_wire(device="D" * 64)), Reading).device == "D" * 64


@pytest.mark.parametrize("cls", [c for c in MESSAGE_TYPES if "device" in c.model_fields], ids=_name)
def test_every_device_field_refuses_a_path(cls: type[Message]) -> None:
    wire = {**_SAMPLES[cls].to_wire(), "device": "../gw-1"}
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "device"


def test_bad_gateway_id_names_the_gw_field() -> None:
    err = _reject(_pack(_reading_wire(gw="gw.*")), InvalidMessage)
    assert err.field == "gw"


def test_bad_device_inside_a_plan_step_names_its_path() -> None:
    wire = _SAMPLES[Plan].to_wire()
    wire["steps"][0]["device"] = "a/b"
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "steps.0.device"


def test_bad_device_inside_a_decision_command_names_its_path() -> None:
    wire = _SAMPLES[Decision].to_wire()
    wire["command"]["device"] = "#"
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "command.device"


def test_agent_event_field_error_names_the_field() -> None:
    wire = {**_SAMPLES[ToolResult].to_wire(), "session": "a/b"}
    err = _reject(_pack(wire), InvalidMessage)
    assert err.field == "session"


def test_agent_event_field_error_with_expect_names_the_field() -> None:
    wire = {**_SAMPLES[ToolResult].to_wire(), "session": "a/b"}
    err = _reject(_pack(wire), InvalidMessage, expect=ToolResult)
    assert err.field == "session"


# --- non-finite numbers --------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_non_finite_metric(encoder: Any, value: float) -> None:
    err = _reject(encoder(_reading_wire(metrics={"temp": value})), NonFiniteValue)
    assert err.field == "metrics.temp"
    assert isinstance(err, InvalidMessage)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_non_finite_metric_spelled_in_json(literal: bytes) -> None:
    wire = _as_json(_reading_wire(metrics={"temp": 0.5})).replace(b"0.5", literal)
    err = _reject(wire, NonFiniteValue)
    assert err.field == "metrics.temp"


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("inputs", {"x": math.nan}, "inputs.x"),
        ("score", math.inf, "score"),
        ("threshold", -math.inf, "threshold"),
    ],
    ids=["inputs", "score", "threshold"],
)
def test_non_finite_decision_field(encoder: Any, field: str, value: Any, label: str) -> None:
    wire = {**_SAMPLES[Decision].to_wire(), field: value}
    err = _reject(encoder(wire), NonFiniteValue)
    assert err.field == label


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (HandoffComplete, "latency_ms", math.nan),
        (ToolResult, "result", [1.0, math.inf]),
        (ToolExecution, "args", {"x": {"y": -math.inf}}),
        (SessionSnapshot, "memory", {"x": math.nan}),
    ],
    ids=["latency_ms", "result", "args", "memory"],
)
def test_non_finite_elsewhere(encoder: Any, cls: type[Message], field: str, value: Any) -> None:
    wire = {**_SAMPLES[cls].to_wire(), field: value}
    err = _reject(encoder(wire), NonFiniteValue)
    assert err.field is not None
    assert field in err.field


@pytest.mark.parametrize("encoder", WIRE_FORMATS)
@pytest.mark.parametrize(
    ("cls", "field"),
    [(Command, "params"), (DesiredState, "state"), (TwinState, "reported")],
    ids=["Command.params", "DesiredState.state", "TwinState.reported"],
)
def test_non_finite_param(encoder: Any, cls: type[Message], field: str) -> None:
    wire = {**_SAMPLES[cls].to_wire(), field: {"x": math.nan}}
    err = _reject(encoder(wire), NonFiniteValue)
    assert err.field == f"{field}.x"


def test_non_finite_param_is_at_least_refused() -> None:
    # Whatever its label (see test_non_finite_param), a NaN parameter never gets through.
    for value in NON_FINITE:
        wire = {**_SAMPLES[Command].to_wire(), "params": {"x": value}}
        with pytest.raises(InvalidMessage):
            decode(_pack(wire))


def test_a_sender_cannot_build_a_non_finite_message() -> None:
    with pytest.raises(ValueError, match="finite"):
        Reading(device="d", seq=0, ts_ms=0, metrics={"temp": math.nan})


# --- msgpack extension types ---------------------------------------------------------

EXTS = [msgpack.ExtType(0, b""), msgpack.ExtType(5, b"x"), msgpack.ExtType(127, b"x" * 20)]


@pytest.mark.parametrize("ext", EXTS, ids=lambda e: f"ext{e.code}")
@pytest.mark.parametrize("where", ["top", "unknown-field", "metric", "params"])
def test_msgpack_ext_type_is_malformed(ext: msgpack.ExtType, where: str) -> None:
    payload: Any = {
        "top": ext,
        "unknown-field": _reading_wire(blob=ext),
        "metric": _reading_wire(metrics={"temp": ext}),
        "params": {**_SAMPLES[Command].to_wire(), "params": {"x": [ext]}},
    }[where]
    err = _reject(_pack(payload), MalformedPayload)
    assert str(ext.code) in str(err)


@pytest.mark.parametrize("where", ["unknown-field", "metric"])
def test_msgpack_timestamp_ext_is_malformed(where: str) -> None:
    stamp = msgpack.Timestamp(1_700_000_000, 0)
    payload = (
        _reading_wire(at=stamp)
        if where == "unknown-field"
        else _reading_wire(metrics={"temp": stamp})
    )
    _reject(_pack(payload), MalformedPayload)


# --- what decode accepts, encode can send --------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [(Command, "params", {"x": 2**64}), (ToolResult, "result", -(2**63) - 1)],
    ids=["Command.params", "ToolResult.result"],
)
def test_json_integer_beyond_msgpack_range(cls: type[Message], field: str, value: Any) -> None:
    wire = _as_json({**_SAMPLES[cls].to_wire(), field: value})
    try:
        msg = decode(wire)
    except InvalidMessage:
        return  # refusing it at the door is fine
    encode(msg)  # accepting it is fine only if it can be forwarded


# Built last: one fixed, valid instance of every class for the example-based tests.
_SAMPLES: dict[type[Message], Message] = {}


def _build_samples() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ev = {"session": "sess-1", "seq": 3, "epoch": 1, "ts_ms": 1000, "traceparent": tp}
    cmd = Command(
        device="dev-1", action="valve.open", deadline_ms=2000, issued_ms=1000, params={"pct": 40}
    )
    step = PlanStep(
        index=0,
        gw="gw-1",
        device="dev-1",
        action="fan.on",
        deadline_ms=5000,
        compensation=Compensation(action="fan.off"),
    )
    rules: list[dict[str, Any]] = [{"when": "temp > 80", "then": "fan.on"}]
    samples: list[Message] = [
        Reading(device="dev-1", seq=7, ts_ms=1000, metrics={"temp": 21.5}, traceparent=tp),
        cmd,
        CommandAck(cmd_id="c1", device="dev-1", ok=True, ts_ms=1000),
        Decision(
            gw="gw-1",
            device="dev-1",
            source="rule",
            name="overheat",
            version="1",
            inputs={"temp": 80.0},
            score=0.9,
            command=cmd,
            latency_us=120,
            ts_ms=1000,
        ),
        DesiredState(device="dev-1", gw="gw-1", version=2, state={"mode": "eco"}, ts_ms=1000),
        ReportedState(device="dev-1", gw="gw-1", applied_version=2, ts_ms=1000),
        GatewayEvent(
            gw="gw-1",
            device="dev-1",
            type="update_refused",
            data={"reason": "bad hash"},
            ts_ms=1000,
        ),
        TwinState(device="dev-1", gw="gw-1", desired={"mode": "eco"}, updated_ms=1000),
        SessionSnapshot(
            session="sess-1",
            gw="gw-1",
            epoch=1,
            owner="edge",
            messages=[ChatMessage(role="user", content="hi", ts_ms=1000)],
            memory={"k": [1, "two", None]},
            cursors={"events": 41},
            created_ms=1000,
        ),
        Plan(trigger="overheat", steps=[step], created_ms=1000),
        RulesUpdate(gw="gw-1", version="3", sha256=rules_digest(rules), rules=rules),
        ModelUpdate(
            gw="gw-1",
            name="anomaly",
            version="2",
            object_name="anomaly-2.onnx",
            sha256="ab" * 32,
            threshold=0.7,
        ),
        AgentStart(**ev, model="qwen"),
        AgentSwitch(**ev, from_agent="a", to_agent="b"),
        ContentChunk(**ev, text="héllo"),
        ToolExecution(**ev, call_id="c1", tool="read_sensor", args={"device": "dev-1"}),
        ToolResult(**ev, call_id="c1", tool="read_sensor", result={"temp": 21.5}),
        AgentComplete(**ev, text="done", tokens=12),
        AgentError(**ev, code="timeout", message="model timed out", retryable=True),
        HandoffRequest(**ev, to="cloud"),
        HandoffSnapshot(**ev, size=1024, object_name="sess-1.1"),
        HandoffAccept(**ev, owner="cloud"),
        HandoffComplete(**ev, owner="cloud", latency_ms=12.5),
        HandoffAbort(**ev, reason="lease lost"),
    ]
    _SAMPLES.update({type(m): m for m in samples})
    assert set(_SAMPLES) == set(ALL_CLASSES)


_build_samples()
