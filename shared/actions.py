"""The action vocabulary: every command name the fleet speaks, its params and their bounds.

One table, read by everyone who makes or judges a command, so nobody keeps a copy:

    cloud planner      plan steps and compensations (`cloud.planner.actions` picks its tools)
    edge guard         the allow-list and bounds a command from outside the rules must meet
    edge twin          desired state → device commands (`group_desired`, below)
    edge gateway       carries out the `gw.*` actions itself
    firmware-sim       checks a command's params before its plant acts on it

    action           target   params
    fan              device   on: bool | speed: 0..1          (at least one)
    valve            device   open: bool | position: 0..1     (at least one)
    pump             device   on: bool
    set_load         device   load: 0..1 of rated load
    set_setpoint     device   setpoint: -50..200, the unit of the device's temperature
    gw.ticket        gateway  kind: maintenance|check, ref, reason?
    gw.ticket_cancel gateway  ref
    gw.diagnose      gateway  (none)

Device actions go to the device's command topic. `gw.*` actions travel the same subject
(`downlink.<gw>.cmd.<device>`, so they stay attached to the device they concern) but
the edge daemon carries them out and acknowledges them itself.

Desired twin state uses the same names: a key is `"<action>.<param>"`, e.g.
``{"fan.on": true, "set_load.load": 0.5}``; `group_desired` turns it into one command per
action (`fan {"on": true}`, `set_load {"load": 0.5}`), which is what the device acks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.messages.base import Params, Scalar

Target = Literal["device", "gateway"]
ParamType = Literal["bool", "number", "text"]

FAN = "fan"
VALVE = "valve"
PUMP = "pump"
SET_LOAD = "set_load"
SET_SETPOINT = "set_setpoint"
TICKET = "gw.ticket"
TICKET_CANCEL = "gw.ticket_cancel"
DIAGNOSE = "gw.diagnose"

GATEWAY_PREFIX = "gw."
# Separates action and param in a desired-state key ("fan.on"). Action names may hold
# dots themselves ("gw.ticket"), so a key splits at its *last* dot.
STATE_SEP = "."
# Longest free text a param may carry (a ticket's reason): commands are small messages.
MAX_TEXT = 512


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False

    def problem(self, value: Scalar) -> str | None:
        """Why `value` does not fit, or None."""
        if self.type == "bool":
            return None if isinstance(value, bool) else "is not true or false"
        if self.type == "text":
            return _text_problem(value, self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "is not a number"
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return f"is outside [{self.low}, {self.high}]"
        return None


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    target: Target
    summary: str
    """What it does, in the words the LLM planner reads as its tool list."""
    params: tuple[Param, ...] = ()
    needs_one: bool = False
    """At least one param must be given (e.g. a fan command is `on` or `speed`)."""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Numeric params with both limits: what the edge guard enforces."""
        return {
            p.name: (p.low, p.high)
            for p in self.params
            if p.type == "number" and p.low is not None and p.high is not None
        }


def _text_problem(value: Scalar, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        return "is not text"
    if choices and value not in choices:
        return f"is not one of {', '.join(choices)}"
    return f"is longer than {MAX_TEXT} characters" if len(value) > MAX_TEXT else None


def _fraction(name: str, *, required: bool = False) -> Param:
    return Param(name, "number", low=0.0, high=1.0, required=required)


_VOCABULARY = (
    Action(FAN, "device", "device: fan on/off (params.on) or at params.speed (0.0-1.0)",
           (Param("on", "bool"), _fraction("speed")), needs_one=True),
    Action(VALVE, "device",
           "device: coolant valve open/closed (params.open) or at params.position (0.0-1.0)",
           (Param("open", "bool"), _fraction("position")), needs_one=True),
    Action(PUMP, "device", "device: pump motor on/off (params.on)",
           (Param("on", "bool", required=True),)),
    Action(SET_LOAD, "device", "device: run at params.load (0.0-1.0 of rated load)",
           (_fraction("load", required=True),)),
    # Wide enough for any process temperature a pump or cabinet sees; a device refuses a
    # setpoint its own physics cannot reach.
    Action(SET_SETPOINT, "device",
           "device: regulate to params.setpoint (same unit as its temperature)",
           (Param("setpoint", "number", low=-50.0, high=200.0, required=True),)),
    Action(TICKET, "gateway", "gateway: open a ticket params.kind ('maintenance'|'check') "
           "with params.ref, params.reason for the site's technicians",
           (Param("kind", "text", choices=("maintenance", "check"), required=True),
            Param("ref", "text", required=True), Param("reason", "text"))),
    Action(TICKET_CANCEL, "gateway", "gateway: withdraw the ticket params.ref",
           (Param("ref", "text", required=True),)),
    Action(DIAGNOSE, "gateway", "gateway: probe the device's link and report what it finds"),
)  # fmt: skip

ACTIONS: Mapping[str, Action] = {action.name: action for action in _VOCABULARY}
DEVICE_ACTIONS: frozenset[str] = frozenset(a.name for a in _VOCABULARY if a.target == "device")
GATEWAY_ACTIONS: frozenset[str] = frozenset(a.name for a in _VOCABULARY if a.target == "gateway")


def is_gateway(action: str) -> bool:
    """Whether the edge daemon carries `action` out itself (never sent to a device)."""
    return action.startswith(GATEWAY_PREFIX)


def problem(action: str, params: Mapping[str, Scalar], *, strict: bool = True) -> str | None:
    """Why `params` do not fit `action` as the vocabulary defines it, or None.

    `strict` (a device implementing the vocabulary, a plan): every param must be known and
    the required ones present. Not strict (the edge guard): only the values of the params
    the vocabulary knows are judged, so a site's own device may take extra params, and a
    missing one is the device's to refuse. An action outside the vocabulary is not judged
    here (None): a site may add its own; whether it is allowed is the guard's call.
    """
    spec = ACTIONS.get(action)
    if spec is None:
        return None
    for name, value in params.items():
        param = spec.param(name)
        if param is None:
            if strict:
                return f"{action} has no param {name!r}"
            continue
        why = param.problem(value)
        if why is not None:
            return f"{action}.{name}={value!r} {why}"
    return _missing(spec, params) if strict else None


def _missing(spec: Action, params: Mapping[str, Scalar]) -> str | None:
    missing = [p.name for p in spec.params if p.required and p.name not in params]
    if missing:
        return f"{spec.name} needs {', '.join(missing)}"
    if spec.needs_one and not params:
        return f"{spec.name} needs one of {', '.join(p.name for p in spec.params)}"
    return None


def state_key(action: str, param: str) -> str:
    """The desired/reported twin key of one action param: `state_key("fan", "on")` → `fan.on`."""
    return f"{action}{STATE_SEP}{param}"


def group_desired(state: Mapping[str, Scalar]) -> dict[str, Params]:
    """Desired state → params per action, in key order: `{"fan.on": True}` → `{"fan": {"on": True}}`.

    Raises `ValueError` for a key that is not `<action>.<param>` or that names a gateway
    action (desired state is about devices).
    """
    grouped: dict[str, Params] = {}
    for key, value in state.items():
        action, sep, param = key.rpartition(STATE_SEP)
        if not sep or not action or not param:
            raise ValueError(f"desired key {key!r} is not <action>.<param> (e.g. 'fan.on')")
        if is_gateway(action):
            raise ValueError(f"desired key {key!r} names gateway action {action!r}")
        grouped.setdefault(action, {})[param] = value
    return grouped
