"""The actuation guard: fencing by session epoch, allow-list, bounds, deadlines.

What a user notices: after a session moved to a new owner, the old owner's late command
does nothing to the device; an expired or out-of-range command is refused with a reason;
the fleet's action vocabulary (what the planner and the twin send) passes with its bounds.
"""

from __future__ import annotations

from typing import Any

import pytest

from edge.actuate import ActuationGuard, GuardPolicy
from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared.messages import Command, now_ms


def command(**fields: Any) -> Command:
    base: dict[str, Any] = {"device": "pump1", "action": "fan", "deadline_ms": now_ms() + 5000}
    base.update(fields)
    return Command(**base)


@pytest.fixture
def guard() -> ActuationGuard:
    config = ActuateConfig(allow=["speed"], bounds={"speed": {"rpm": (0.0, 3000.0)}})
    return ActuationGuard(GuardPolicy.build(config, frozenset({"fan"})))


def refused(guard: ActuationGuard, cmd: Command) -> str:
    with pytest.raises(GuardRefused) as info:
        guard.check(cmd, now_ms())
    return info.value.reason


def test_lower_epoch_of_a_session_is_refused(guard: ActuationGuard) -> None:
    assert guard.check(command(session="s1", epoch=3), now_ms()) is True
    assert guard.check(command(session="s1", epoch=3), now_ms()) is False  # same owner again
    assert refused(guard, command(session="s1", epoch=2)) == "stale_epoch"
    assert guard.check(command(session="s2", epoch=1), now_ms()) is True  # sessions are separate
    assert guard.epoch("s1") == 3


def test_commands_without_a_session_are_not_fenced(guard: ActuationGuard) -> None:
    guard.check(command(session="s1", epoch=9), now_ms())
    guard.check(command(epoch=0), now_ms())


def test_a_newer_epoch_counts_even_when_its_command_is_refused(guard: ActuationGuard) -> None:
    assert refused(guard, command(session="s1", epoch=5, action="nuke")) == "not_allowed"
    assert refused(guard, command(session="s1", epoch=4)) == "stale_epoch"


def test_epochs_survive_a_restart() -> None:
    guard = ActuationGuard(GuardPolicy(frozenset({"fan"})), {"s1": 7})
    assert refused(guard, command(session="s1", epoch=6)) == "stale_epoch"


def test_allow_list_and_bounds(guard: ActuationGuard) -> None:
    guard.check(command(action="speed", params={"rpm": 1500}), now_ms())
    assert refused(guard, command(action="open_all")) == "not_allowed"
    assert refused(guard, command(action="speed", params={"rpm": 3001})) == "out_of_bounds"
    assert refused(guard, command(action="speed", params={"rpm": "fast"})) == "out_of_bounds"
    assert refused(guard, command(action="speed", params={"rpm": True})) == "out_of_bounds"


def test_expired_deadline(guard: ActuationGuard) -> None:
    assert refused(guard, command(deadline_ms=now_ms() - 1)) == "expired"


def test_the_action_vocabulary_is_allowed_with_its_bounds(guard: ActuationGuard) -> None:
    guard.check(command(action="set_load", params={"load": 0.5}), now_ms())
    guard.check(command(action="set_setpoint", params={"setpoint": 55.0}), now_ms())
    guard.check(command(action="gw.ticket", params={"kind": "check", "ref": "t1"}), now_ms())
    assert refused(guard, command(action="set_load", params={"load": 1.5})) == "out_of_bounds"
    assert refused(guard, command(action="fan", params={"on": "yes"})) == "bad_params"
    kind = {"kind": "party", "ref": "t1"}
    assert refused(guard, command(action="gw.ticket", params=kind)) == "bad_params"
    # A site's own device may take params the vocabulary does not name.
    guard.check(command(action="valve", params={"opening": 40}), now_ms())


def test_site_bounds_take_precedence_over_the_vocabulary() -> None:
    config = ActuateConfig(bounds={"set_setpoint": {"setpoint": (40.0, 300.0)}})
    guard = ActuationGuard(GuardPolicy.build(config, frozenset()))
    guard.check(command(action="set_setpoint", params={"setpoint": 250.0}), now_ms())
    low = command(action="set_setpoint", params={"setpoint": 20.0})
    assert refused(guard, low) == "out_of_bounds"
