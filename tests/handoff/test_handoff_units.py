"""The pieces without a server: the receiver's gate, frames, the public surface."""

from __future__ import annotations

import msgpack
import pytest
from pydantic import field_serializer

import shared.session
from shared.codec import encode
from shared.errors import DecodeError, InvalidMessage, MalformedPayload, UnsupportedSchema
from shared.messages import (
    AgentEventBase,
    AgentStart,
    ContentChunk,
    HandoffComplete,
    ToolExecution,
    ToolResult,
)
from shared.session import SeqGate
from shared.session.frames import (
    Mark,
    encode_event,
    pack,
    pack_ack,
    pack_json,
    pack_one,
    pack_pieces,
    unpack,
)


def chunk(seq: int, epoch: int = 1, text: str = "") -> ContentChunk:
    return ContentChunk(session="s1", seq=seq, epoch=epoch, text=text or f"t{seq}")


def seqs(events: list[AgentEventBase]) -> list[int]:
    return [event.seq for event in events]


def test_gate_delivers_each_seq_once_in_order() -> None:
    gate = SeqGate()
    assert seqs(gate.offer([chunk(1), chunk(3)])) == [1]  # 3 waits for 2
    assert gate.gap
    assert seqs(gate.offer([chunk(2), chunk(3), chunk(1)])) == [2, 3]
    assert not gate.gap and gate.stats.repeats == 2


def test_gate_fences_a_lower_epoch_and_rebases_on_a_higher_one() -> None:
    gate = SeqGate()
    gate.offer([chunk(1, epoch=5), chunk(2, epoch=5), chunk(3, epoch=5)])
    assert gate.offer([chunk(4, epoch=4)]) == []  # a fenced-out owner's late event
    # a new owner numbers on from the durable log (2): what it says supersedes seq 3
    assert seqs(gate.offer([chunk(3, epoch=7, text="again"), chunk(4, epoch=7)])) == [3, 4]
    assert (gate.stats.stale, gate.stats.rebased, gate.epoch) == (1, 1, 7)


def test_a_gate_that_starts_at_a_seq_treats_older_ones_as_repeats() -> None:
    gate = SeqGate(last=10)
    assert gate.offer([chunk(9, epoch=3)]) == []
    assert seqs(gate.offer([chunk(11, epoch=3)])) == [11]


def test_frames_round_trip() -> None:
    events = [chunk(1), chunk(2)]
    frame = unpack(pack([encode(e) for e in events], Mark(40, 2)))
    assert frame.events == events and frame.mark == Mark(40, 2)
    assert unpack(pack_ack(7)).ack == 7
    assert unpack(pack_json(events)).events == events
    bare = chunk(3)
    assert unpack(encode(bare)).events == [bare]  # a bare event reads as a frame of one


def test_the_live_encoder_writes_what_the_codec_writes() -> None:
    events: list[AgentEventBase] = [
        chunk(1),
        chunk(2).model_copy(update={"seq": 9, "epoch": 4}),  # re-stamped by a stream
        ToolExecution(session="s1", seq=3, call_id="c", tool="t", args={"a": [1, {"b": None}]}),
        ToolResult(session="s1", seq=4, call_id="c", tool="t", ok=False, result={"x": 1.5}),
        HandoffComplete(session="s1", seq=5, owner="edge", latency_ms=3.25),
        AgentStart(session="s1", seq=6),
    ]
    for event in events:
        assert encode_event(event) == encode(event)
        assert unpack(pack_one(encode_event(event))).events == [event]
    # A type of its own (here one with a serializer) goes through the codec.
    shouted = Shouted(session="s1", seq=7, text="hi")
    assert encode_event(shouted) == encode(shouted)
    assert msgpack.unpackb(encode_event(shouted))["text"] == "HI"


class Shouted(ContentChunk):
    @field_serializer("text")
    def _upper(self, text: str) -> str:
        return text.upper()


def test_a_refused_event_names_its_field() -> None:
    raw = chunk(1).to_wire() | {"seq": -1}
    with pytest.raises(InvalidMessage) as refused:
        unpack(msgpack.packb({"e": [raw]}))
    assert refused.value.field == "seq"
    with pytest.raises(InvalidMessage) as refused:
        unpack(msgpack.packb({"e": [raw | {"type": "nope"}]}))
    assert refused.value.field == "type"


def test_big_events_go_in_pieces() -> None:
    big = encode(chunk(1, text="x" * 150_000))
    pieces = [unpack(piece).piece for piece in pack_pieces(big)]
    assert len(pieces) == 3 and b"".join(p[2] for p in pieces if p) == big


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xc1", MalformedPayload),
        (msgpack.packb([1, 2]), DecodeError),
        (msgpack.packb({"e": [{"v": 99, "kind": "agent_event"}]}), UnsupportedSchema),
        (msgpack.packb({"e": [{"v": 1, "kind": "reading"}]}), DecodeError),
        (msgpack.packb({"e": [msgpack.ExtType(5, b"x")]}), MalformedPayload),
        (msgpack.packb({"w": [1]}), DecodeError),
        (pack_one(encode(chunk(1))) + b"\x01", MalformedPayload),  # bytes after the frame
        (pack_one(msgpack.packb(7)), DecodeError),  # a frame of one non-event
    ],
)
def test_bad_frames_are_refused_with_a_reason(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        unpack(data)


def test_a_timestamp_extension_in_an_event_is_refused() -> None:
    raw = chunk(1).to_wire() | {"text": msgpack.Timestamp(1, 0)}
    with pytest.raises(DecodeError):
        unpack(msgpack.packb({"e": [raw]}))


def test_the_public_surface() -> None:
    assert shared.session.__all__ == sorted(shared.session.__all__)
    assert {"SessionHost", "SessionRunner", "LeaseStore", "EventFeed", "hand_out"} <= set(
        shared.session.__all__
    )
