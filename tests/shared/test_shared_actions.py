"""The action vocabulary every part reads: names, params, bounds, desired-state keys.

What a user notices: the same command is judged the same way by the planner, the edge's
guard and the device; a desired state `{"fan.on": true, "set_load.load": 0.5}` becomes one
command per action; a key that is not `<action>.<param>` is refused with a reason.
"""

from __future__ import annotations

import pytest

from shared import actions


def test_desired_state_groups_into_one_command_per_action() -> None:
    state = {"fan.on": True, "set_load.load": 0.5, "fan.speed": 0.3}
    assert actions.group_desired(state) == {
        "fan": {"on": True, "speed": 0.3},
        "set_load": {"load": 0.5},
    }
    assert actions.group_desired({}) == {}
    assert actions.state_key("set_setpoint", "setpoint") == "set_setpoint.setpoint"


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ({"load": 0.5}, "not <action>.<param>"),
        ({".on": True}, "not <action>.<param>"),
        ({"fan.": True}, "not <action>.<param>"),
        ({"gw.ticket.ref": "t"}, "gateway action"),
    ],
)
def test_desired_keys_outside_the_convention_are_refused(state: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        actions.group_desired(state)


def test_strict_checks_are_what_a_device_and_a_plan_need() -> None:
    assert actions.problem("set_load", {"load": 0.5}) is None
    assert actions.problem("set_load", {}) == "set_load needs load"
    assert actions.problem("fan", {}) == "fan needs one of on, speed"
    assert actions.problem("fan", {"turbo": True}) == "fan has no param 'turbo'"
    assert "is outside [0.0, 1.0]" in (actions.problem("valve", {"position": 2}) or "")
    assert "is not true or false" in (actions.problem("pump", {"on": 1}) or "")
    assert "is not one of" in (actions.problem("gw.ticket", {"kind": "x", "ref": "r"}) or "")
    assert actions.problem("heater", {"anything": 1}) is None  # a site's own action


def test_the_guard_judges_only_what_the_vocabulary_knows() -> None:
    assert actions.problem("valve", {"opening": 40}, strict=False) is None
    assert actions.problem("fan", {}, strict=False) is None
    assert actions.problem("fan", {"on": "yes"}, strict=False) is not None


def test_device_and_gateway_actions_and_the_planners_share_one_table() -> None:
    from cloud.planner.actions import ACTIONS

    assert sorted(actions.DEVICE_ACTIONS) == ["fan", "pump", "set_load", "set_setpoint", "valve"]
    assert sorted(actions.GATEWAY_ACTIONS) == ["gw.diagnose", "gw.ticket", "gw.ticket_cancel"]
    assert all(actions.is_gateway(name) for name in actions.GATEWAY_ACTIONS)
    assert set(ACTIONS) <= set(actions.ACTIONS)
    assert all(ACTIONS[name] == actions.ACTIONS[name].summary for name in ACTIONS)
    assert actions.ACTIONS["set_load"].bounds == {"load": (0.0, 1.0)}
