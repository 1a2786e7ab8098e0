"""W3C trace context: one trace id follows a reading from sensor to planner and back."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import trace
from shared.codec import decode, encode, encode_json
from shared.errors import InvalidMessage
from shared.messages import Reading
from shared.trace import TraceContext

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

trace_ids = st.integers(min_value=1, max_value=2**128 - 1).map(lambda n: f"{n:032x}")
span_ids = st.integers(min_value=1, max_value=2**64 - 1).map(lambda n: f"{n:016x}")
flags = st.integers(min_value=0, max_value=255).map(lambda n: f"{n:02x}")


@settings(max_examples=100, deadline=None)
@given(trace_id=trace_ids, span_id=span_ids, flag=flags)
def test_parse_and_str_round_trip(trace_id: str, span_id: str, flag: str) -> None:
    text = f"00-{trace_id}-{span_id}-{flag}"
    ctx = TraceContext.parse(text)
    assert (ctx.trace_id, ctx.span_id, ctx.flags) == (trace_id, span_id, flag)
    assert str(ctx) == text
    assert TraceContext.parse(str(ctx)) == ctx
    assert trace.is_valid(text)


def test_new_contexts_are_valid_and_distinct() -> None:
    made = [TraceContext.new() for _ in range(200)]
    assert all(trace.is_valid(str(ctx)) for ctx in made)
    assert len({ctx.trace_id for ctx in made}) == len(made)
    assert all(ctx.flags == "01" for ctx in made)  # sampled
    assert trace.is_valid(trace.new_traceparent())


def test_child_keeps_the_trace_and_changes_the_span() -> None:
    parent = TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    children = [parent.child() for _ in range(50)]
    for child in children:
        assert child.trace_id == parent.trace_id
        assert child.span_id != parent.span_id
        assert child.flags == parent.flags
        assert trace.is_valid(str(child))
    assert len({child.span_id for child in children}) == len(children)


def test_child_of_a_traceparent_string() -> None:
    child = TraceContext.parse(trace.child_of(VALID))
    assert child.trace_id == TraceContext.parse(VALID).trace_id
    assert child.span_id != TraceContext.parse(VALID).span_id


@pytest.mark.parametrize("bad", ["", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"])
def test_child_of_an_invalid_traceparent_starts_a_fresh_trace(bad: str) -> None:
    fresh = trace.child_of(bad)
    assert trace.is_valid(fresh)
    assert trace.child_of(bad) != fresh


INVALID = [
    pytest.param("00-" + "0" * 32 + "-00f067aa0ba902b7-01", id="zero-trace-id"),
    pytest.param("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", id="zero-span-id"),
    pytest.param(VALID.upper(), id="uppercase"),
    pytest.param("01" + VALID[2:], id="version-01"),
    pytest.param("ff" + VALID[2:], id="version-ff"),
    pytest.param(VALID[:-1], id="short-flags"),
    pytest.param(VALID + "-extra", id="extra-field"),
    pytest.param(VALID.replace("-", "_"), id="wrong-separator"),
    pytest.param(" " + VALID, id="leading-space"),
    pytest.param("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", id="short-trace-id"),
    pytest.param("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", id="non-hex"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("bad", INVALID)
def test_invalid_traceparent_is_rejected(bad: str) -> None:
    assert not trace.is_valid(bad)
    with pytest.raises(ValueError):
        TraceContext.parse(bad)


def test_traceparent_with_a_trailing_newline_is_rejected() -> None:
    assert not trace.is_valid(VALID + "\n")


def test_every_message_gets_its_own_valid_trace() -> None:
    first = Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0})
    second = Reading(device="d", seq=1, ts_ms=0, metrics={"t": 1.0})
    assert trace.is_valid(first.traceparent)
    assert first.traceparent != second.traceparent


def test_traceparent_survives_the_codec() -> None:
    msg = Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0}, traceparent=VALID)
    assert decode(encode(msg)).traceparent == VALID
    assert decode(encode_json(msg)).traceparent == VALID


@pytest.mark.parametrize("bad", INVALID)
def test_message_with_an_invalid_traceparent_is_refused(bad: str) -> None:
    wire = Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0}).to_wire()
    wire["traceparent"] = bad
    with pytest.raises(InvalidMessage) as info:
        decode(msgpack.packb(wire))
    assert type(info.value) is InvalidMessage
    assert info.value.field == "traceparent"
    with pytest.raises(ValidationError):
        Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0}, traceparent=bad)


@pytest.mark.parametrize("bad", [None, 5, b"00-", ["00"]], ids=repr)
def test_message_with_a_traceparent_of_the_wrong_type_is_refused(bad: object) -> None:
    wire = Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0}).to_wire()
    wire["traceparent"] = bad
    with pytest.raises(InvalidMessage) as info:
        decode(msgpack.packb(wire, use_bin_type=True))
    assert info.value.field == "traceparent"


def test_message_with_a_newline_in_its_traceparent_is_refused() -> None:
    wire = Reading(device="d", seq=0, ts_ms=0, metrics={"t": 1.0}).to_wire()
    wire["traceparent"] = VALID + "\n"
    with pytest.raises(InvalidMessage):
        decode(msgpack.packb(wire))
