"""Issue 10 item 10, decoders in-process: hypothesis against every place bytes from the
network are turned into a message, each allowed to answer only with its typed refusal.

    codec.decode          every kind, with and without the expected class
    codec.peek            the forwarder's envelope read, and its agreement with decode
    cloud facts.parse     a FLEET message: subject, headers and payload
    downlink Dispatcher   a DOWNLINK message: subject and payload, a handler that accepts

A crash is any other exception: hypothesis shrinks it and the test fails with it. The
counted side (the counters these refusals move in a running service) is in
test_rel_fuzz_services.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.errors import ObjectNotFoundError
from relkit_figures import Figures
from relkit_fuzz import (
    CODEC_REASONS,
    FACT_REASONS,
    MODEL_BYTES,
    MODEL_OBJECT,
    downlink_messages,
    fleet_messages,
    payloads,
)

from cloud.errors import Rejected
from cloud.ingest.facts import Fact, parse
from edge.uplink.dispatch import Dispatcher, Refused
from shared import codec
from shared.errors import DecodeError
from shared.messages import (
    Command,
    CommandAck,
    DesiredState,
    Message,
    ModelUpdate,
    Reading,
    RulesUpdate,
    now_ms,
)
from tests.shared.test_shared_codec import STRATEGIES

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
GW = "gw1"


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=SLOW_OK)


def _tally(figures: Figures, outcomes: Counter[str]) -> None:
    rejected = {k: v for k, v in outcomes.items() if k != "accepted"}
    figures.record(
        inputs=sum(outcomes.values()),
        accepted=outcomes["accepted"],
        rejected=sum(rejected.values()),
        crashes=0,
        **{f"rejected_{reason}": n for reason, n in sorted(rejected.items())},
    )


def _decode_kind(cls: type[Message], examples: int, outcomes: Counter[str]) -> None:
    @_settings(examples)
    @given(data=payloads(cls))
    def decode_both_ways(data: bytes) -> None:
        for expect in (None, cls):
            try:
                msg = codec.decode(data, expect)
            except DecodeError as exc:
                assert exc.reason in CODEC_REASONS, exc
                outcomes[exc.reason] += 1
            else:
                assert isinstance(msg, expect or Message)
                outcomes["accepted"] += 1

    decode_both_ways()


def test_codec_decode_refuses_bad_bytes_of_every_kind_with_a_typed_reason(
    figures: Figures,
) -> None:
    examples = figures.scale(ci=10, full=500, name="examples_per_kind")
    outcomes: Counter[str] = Counter()
    for cls in STRATEGIES:
        _decode_kind(cls, examples, outcomes)
    figures.record(kinds=len(STRATEGIES))
    _tally(figures, outcomes)


def test_codec_peek_refuses_with_a_typed_reason_and_agrees_with_decode(figures: Figures) -> None:
    examples = figures.scale(ci=100, full=10_000, name="examples")
    outcomes: Counter[str] = Counter()

    @_settings(examples)
    @given(
        data=payloads(Reading) | payloads(CommandAck) | payloads(None),
        expect=st.sampled_from([Reading, CommandAck, Command]),
    )
    def peek(data: bytes, expect: type[Message]) -> None:
        try:
            envelope = codec.peek(data, expect)
        except DecodeError as exc:
            assert exc.reason in CODEC_REASONS, exc
            outcomes[exc.reason] += 1
            envelope = None
        else:
            outcomes["accepted"] += 1
        if expect is Command:
            return  # not a forwarded kind: peek refuses it whatever the bytes (typed, above)
        try:
            msg = codec.decode(data, expect)
        except DecodeError:
            return
        # Whatever the endpoint accepts, the forwarder let through, with the same keys.
        assert envelope is not None, f"peek refused what decode accepts: {data!r}"
        assert envelope.device == getattr(msg, "device", None)
        assert envelope.key == getattr(msg, "seq", getattr(msg, "cmd_id", None))

    peek()
    _tally(figures, outcomes)


hlc_headers = st.none() | st.text(max_size=24) | st.integers(-(2**70), 2**70).map(str)


def test_cloud_fact_parsing_refuses_with_a_typed_reason(figures: Figures) -> None:
    examples = figures.scale(ci=150, full=10_000, name="examples")
    outcomes: Counter[str] = Counter()
    now = now_ms()

    @_settings(examples)
    @given(
        message=fleet_messages(),
        hlc=st.none() | st.none() | hlc_headers,
        sender=st.none() | st.sampled_from(["gw1", "gw2", "dev-a"]),
    )
    def parse_one(message: tuple[str, bytes], hlc: str | None, sender: str | None) -> None:
        subject, data = message
        headers = {k: v for k, v in (("Baton-Hlc", hlc), ("Baton-Gateway", sender)) if v}
        try:
            fact = parse(subject, headers, data, now_ms=now)
        except Rejected as exc:
            assert exc.reason in FACT_REASONS, exc
            outcomes[exc.reason] += 1
            return
        assert isinstance(fact, Fact)
        assert subject == f"fleet.{fact.gw}.{fact.kind}.{fact.device}"
        outcomes["accepted"] += 1

    parse_one()
    _tally(figures, outcomes)


class AcceptAll:
    """A `DownlinkHandler` that takes everything: only the checks before it can refuse."""

    async def on_command(self, cmd: Command) -> None:
        pass

    async def on_desired(self, desired: DesiredState) -> None:
        pass

    async def on_rules(self, update: RulesUpdate) -> None:
        pass

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        assert hashlib.sha256(data).hexdigest() == update.sha256


async def _fetch(update: ModelUpdate) -> bytes:
    if update.object_name != MODEL_OBJECT:
        raise ObjectNotFoundError()
    return MODEL_BYTES


def test_downlink_dispatch_refuses_with_a_typed_reason(figures: Figures) -> None:
    examples = figures.scale(ci=150, full=10_000, name="examples")
    outcomes: Counter[str] = Counter()
    dispatcher = Dispatcher(GW, AcceptAll(), _fetch, fetch_timeout_s=5.0)
    loop = asyncio.new_event_loop()

    @_settings(examples)
    @given(message=downlink_messages(GW))
    def dispatch(message: tuple[str, bytes]) -> None:
        subject, data = message
        try:
            msg = loop.run_until_complete(dispatcher.dispatch(subject, data))
        except Refused as exc:
            assert exc.reason, "a refusal without a reason"
            outcomes[exc.reason.split(":")[0].split(" ")[0]] += 1
            return
        assert isinstance(msg, Command | DesiredState | RulesUpdate | ModelUpdate)
        outcomes["accepted"] += 1

    try:
        dispatch()
    finally:
        loop.close()
    _tally(figures, outcomes)


# Found by atheris (test_rel_fuzz_atheris.py, full form): 400 nested one-element msgpack
# arrays around a bin holding the bytes d6 ff (a msgpack timestamp header). msgpack
# unpacks it; the codec's timestamp scan then recurses once per level.
DEEP = b"\x91" * 400 + b"\xc4\x02\xd6\xff"


@pytest.mark.parametrize("read", ["decode", "peek"])
def test_a_deeply_nested_payload_is_a_typed_refusal(read: str, figures: Figures) -> None:
    figures.record(payload_bytes=len(DEEP), nesting=400)
    with pytest.raises(DecodeError) as refused:
        if read == "decode":
            codec.decode(DEEP)
        else:
            codec.peek(DEEP, Reading)
    assert refused.value.reason == "malformed"
