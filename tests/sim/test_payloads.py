"""What devices put on the wire decodes with the shared codec, and bad payloads fail typed."""

from __future__ import annotations

import pytest
from firmware_sim import payloads

from shared.codec import decode
from shared.errors import DecodeError, InvalidMessage, MalformedPayload, PayloadTooLarge
from shared.messages import Reading
from shared.trace import is_valid


def good() -> dict[str, object]:
    return payloads.reading_dict("pump-0", 7, 1_700_000_000_000, {"temp_c": 41.5}, "pump")


def test_a_reading_decodes_as_a_reading() -> None:
    reading = decode(payloads.pack(good()), Reading)
    assert (reading.device, reading.seq, reading.metrics) == ("pump-0", 7, {"temp_c": 41.5})
    assert reading.dclass == "pump" and is_valid(reading.traceparent)


def test_trace_ids_differ_per_reading() -> None:
    assert payloads.traceparent() != payloads.traceparent()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("truncated", MalformedPayload),
        ("wrong_types", InvalidMessage),
        ("oversized", PayloadTooLarge),
    ],
)
def test_each_bad_payload_raises_its_typed_error(kind: str, error: type[DecodeError]) -> None:
    data = payloads.BAD_PAYLOADS[kind](good())  # type: ignore[index]
    with pytest.raises(DecodeError) as caught:
        decode(data, Reading)
    assert type(caught.value) is error
