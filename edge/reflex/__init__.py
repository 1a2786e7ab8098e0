"""Reflex: readings in, `Firing`s out, with no I/O on the way (see `trigger` for semantics)."""

from edge.reflex.engine import ReflexEngine, RuleSet
from edge.reflex.model import ModelRule, Scorer, load_scorer
from edge.reflex.rules import RateRule, Rule, ThresholdRule, WindowRule, build_rule
from edge.reflex.trigger import Firing, Limit, TriggerState, trip

__all__ = [
    "Firing",
    "Limit",
    "ModelRule",
    "RateRule",
    "ReflexEngine",
    "Rule",
    "RuleSet",
    "Scorer",
    "ThresholdRule",
    "TriggerState",
    "WindowRule",
    "build_rule",
    "load_scorer",
    "trip",
]
