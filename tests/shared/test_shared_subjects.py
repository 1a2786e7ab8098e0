"""Subjects and ids: no device id can add a subject level, a wildcard or a path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared import subjects
from shared.messages.base import DeviceId

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
uplink_kinds = st.sampled_from(subjects.UPLINK_TYPES)

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
    "dev\r\n",
    "dev\t",
    "dev\x00",
    "dev.*",
    "dev/#",
]


def _nats_match(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _mqtt_match(pattern: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7: `+` is one level, a final `#` is any number of levels."""
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


@settings(max_examples=100, deadline=None)
@given(value=ids)
def test_valid_ids_are_accepted(value: str) -> None:
    assert subjects.is_valid_id(value)
    assert subjects.check_id(value) == value


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
def test_invalid_ids_are_refused(value: str) -> None:
    assert not subjects.is_valid_id(value)
    with pytest.raises(ValueError, match="invalid device id"):
        subjects.check_id(value, "device id")


def test_id_with_a_trailing_newline_is_refused() -> None:
    assert not subjects.is_valid_id("dev\n")


@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet="aZ09_-./+#*> \té\x00", max_size=66) | st.text(max_size=66))
def test_is_valid_id_agrees_with_the_message_models(value: str) -> None:
    # Known exception: a trailing "\n" (test_id_with_a_trailing_newline_is_refused).
    if value.endswith("\n"):
        return
    try:
        TypeAdapter(DeviceId).validate_python(value)
    except ValidationError:
        model_ok = False
    else:
        model_ok = True
    assert subjects.is_valid_id(value) == model_ok


def test_gateway_domain() -> None:
    assert subjects.gateway_domain("gw-1") == "edge-gw-1"
    with pytest.raises(ValueError, match="gateway id"):
        subjects.gateway_domain("gw.1")


# --- device topics and their NATS twins ----------------------------------------------


def test_mqtt_topics_map_to_nats_subjects() -> None:
    assert subjects.mqtt_reading("dev-1") == "baton/d/dev-1/r"
    assert subjects.mqtt_to_nats(subjects.mqtt_reading("dev-1")) == "baton.d.dev-1.r"
    assert subjects.mqtt_to_nats(subjects.mqtt_command("dev-1")) == "baton.d.dev-1.cmd"
    assert subjects.mqtt_to_nats(subjects.mqtt_ack("dev-1")) == "baton.d.dev-1.ack"
    assert subjects.mqtt_to_nats(subjects.mqtt_status("dev-1")) == "baton.d.dev-1.status"


@settings(max_examples=100, deadline=None)
@given(device=ids)
def test_device_topics_round_trip_through_subjects(device: str) -> None:
    topics = {
        "r": subjects.mqtt_reading(device),
        "cmd": subjects.mqtt_command(device),
        "ack": subjects.mqtt_ack(device),
        "status": subjects.mqtt_status(device),
    }
    for topic in topics.values():
        subject = subjects.mqtt_to_nats(topic)
        assert subjects.device_from_subject(subject) == device
        assert subjects.device_from_subject(topic) == device
        assert len(subject.split(".")) == len(topic.split("/")) == 4
    assert _nats_match(subjects.READINGS_ALL, subjects.mqtt_to_nats(topics["r"]))
    assert _nats_match(subjects.ACKS_ALL, subjects.mqtt_to_nats(topics["ack"]))
    assert _nats_match(subjects.STATUS_ALL, subjects.mqtt_to_nats(topics["status"]))
    assert _mqtt_match(subjects.MQTT_READINGS_ALL, topics["r"])
    assert _mqtt_match(subjects.MQTT_ACKS_ALL, topics["ack"])
    assert _mqtt_match(subjects.MQTT_STATUS_ALL, topics["status"])
    assert not _nats_match(subjects.READINGS_ALL, subjects.mqtt_to_nats(topics["cmd"]))


@pytest.mark.parametrize("subject", ["", "baton", "baton.d", "baton.d.dev-1", "baton/d/dev-1"])
def test_device_from_a_short_subject_is_empty(subject: str) -> None:
    assert subjects.device_from_subject(subject) == ""


# --- gateway <-> hub -----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(gw=ids, other=ids, kind=uplink_kinds, device=ids)
def test_uplink_and_fleet_subjects(gw: str, other: str, kind: str, device: str) -> None:
    up = subjects.uplink(gw, kind, device)
    assert up.split(".") == ["uplink", gw, kind, device]
    assert _nats_match(subjects.uplink_all(gw), up)
    assert _nats_match(subjects.uplink_all(other), up) == (other == gw)
    down = subjects.fleet(gw, kind, device)
    assert down.split(".") == ["fleet", gw, kind, device]
    assert _nats_match(subjects.FLEET_ALL, down)


@settings(max_examples=100, deadline=None)
@given(gw=ids, other=ids, device=ids)
def test_downlink_subjects(gw: str, other: str, device: str) -> None:
    cmd = subjects.downlink(gw, "cmd", device)
    rules = subjects.downlink(gw, "rules")
    assert cmd == f"downlink.{gw}.cmd.{device}"
    assert rules == f"downlink.{gw}.rules"
    for subject in (cmd, rules):
        assert _nats_match(subjects.downlink_all(gw), subject)
        assert _nats_match(subjects.DOWNLINK_ALL, subject)
        assert _nats_match(subjects.downlink_all(other), subject) == (other == gw)


def test_session_subjects() -> None:
    assert subjects.session_events("s1") == "session.s1.ev"
    assert _nats_match(subjects.SESSIONS_ALL, subjects.session_events("s1"))
    assert subjects.rtc_signal("s1", "edge") == "rtc.s1.edge"
    assert subjects.handoff_request("gw-1") == "handoff.gw-1.request"


# --- JetStream de-duplication ids ----------------------------------------------------

keys = st.tuples(ids, ids, uplink_kinds, seqs)


@settings(max_examples=200, deadline=None)
@given(a=keys, b=keys)
def test_msg_id_is_unique_per_gateway_device_kind_seq(
    a: tuple[str, str, str, int], b: tuple[str, str, str, int]
) -> None:
    assert (subjects.msg_id(*a) == subjects.msg_id(*b)) == (a == b)


@settings(max_examples=100, deadline=None)
@given(key=keys)
def test_msg_id_is_stable(key: tuple[str, str, str, int]) -> None:
    # A resend after a reconnect must carry the same id, or JetStream stores it twice.
    assert subjects.msg_id(*key) == subjects.msg_id(*key)


def test_msg_ids_do_not_collide_across_adjacent_fields() -> None:
    # Without a separator that ids cannot contain, ("gw-1", "1dev") and ("gw-11", "dev")
    # would collide.
    made = {
        subjects.msg_id(gw, dev, kind, seq)
        for gw in ("gw", "gw-1", "gw-11", "1")
        for dev in ("dev", "1dev", "ev", "r")
        for kind in subjects.UPLINK_TYPES
        for seq in (0, 1, 11, 110)
    }
    assert len(made) == 4 * 4 * len(subjects.UPLINK_TYPES) * 4
