"""Reflex rules with plain values: what fires, when, and how often.

What a user notices: a pump gets its fan command when it is hot for long enough, not for
one spike; once, not every reading; again only after it cooled down (hysteresis) or
after the cooldown; and a rule for one device or class leaves the others alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from edge.config import ModelConfig, RuleConfig
from edge.errors import RuleError
from edge.reflex import ModelRule, ReflexEngine, RuleSet, build_rule
from edge.reflex.control import parse_rules


def rule(**fields: Any) -> RuleConfig:
    base: dict[str, Any] = {"name": "r", "metric": "t", "action": "fan", "cooldown_s": 0}
    base.update(fields)
    return RuleConfig(**base)


def feed(
    cfg: RuleConfig, values: Sequence[float], *, dt_s: float = 1.0, device: str = "d1"
) -> list[bool]:
    """Which readings fired, one per value, one second apart (device time and receipt)."""
    r = build_rule(cfg)
    fired = []
    for i, v in enumerate(values):
        firing = r.observe(device, {"t": v}, ts_ms=int(i * dt_s * 1000), now_s=i * dt_s)
        fired.append(firing is not None)
    return fired


def test_threshold_fires_above_and_below() -> None:
    assert feed(rule(above=70), [60, 71, 60]) == [False, True, False]
    assert feed(rule(below=5), [10, 4, 10]) == [False, True, False]


def test_without_clear_it_repeats_while_past_the_limit() -> None:
    assert feed(rule(above=70), [71, 72, 73]) == [True, True, True]


def test_hysteresis_fires_once_per_excursion() -> None:
    cfg = rule(above=70, clear=65)
    # 68 is inside the limit but not past `clear`: still latched.
    assert feed(cfg, [71, 72, 68, 71, 64, 71]) == [True, False, False, False, False, True]


def test_hysteresis_below_clears_upwards() -> None:
    assert feed(rule(below=5, clear=8), [4, 3, 6, 4, 9, 4]) == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]


def test_debounce_needs_consecutive_readings() -> None:
    cfg = rule(above=70, debounce=3)
    assert feed(cfg, [71, 71, 60, 71, 71, 71]) == [False, False, False, False, False, True]


def test_cooldown_spaces_firings() -> None:
    cfg = rule(above=70, cooldown_s=2.5)
    assert feed(cfg, [71, 71, 71, 71, 71, 71]) == [True, False, False, True, False, False]


def test_rate_of_change_uses_device_time() -> None:
    cfg = rule(kind="rate", rate_per_s=2.0)
    # +1/s, then +3/s, then -5/s (|rate|), then flat.
    assert feed(cfg, [10, 11, 14, 9, 9]) == [False, False, True, True, False]
    # Twice as fast in device time is twice the rate.
    assert feed(cfg, [10, 11.5], dt_s=0.5) == [False, True]


def test_rate_skips_out_of_order_timestamps() -> None:
    r = build_rule(rule(kind="rate", rate_per_s=1.0))
    assert r.observe("d", {"t": 0}, ts_ms=2000, now_s=0) is None
    assert r.observe("d", {"t": 100}, ts_ms=1000, now_s=1) is None  # earlier: no rate
    assert r.observe("d", {"t": 200}, ts_ms=2000, now_s=2) is not None  # 100/s since 1000


def test_window_aggregates_once_full() -> None:
    cfg = rule(kind="window", window=3, agg="mean", above=70)
    assert feed(cfg, [80, 80, 60, 50, 50]) == [False, False, True, False, False]
    assert feed(rule(kind="window", window=3, agg="max", above=70), [80, 50, 50, 50]) == [
        False, False, True, False,
    ]  # fmt: skip
    assert feed(rule(kind="window", window=2, agg="min", below=5), [6, 6, 4, 6, 6]) == [
        False, False, True, True, False,
    ]  # fmt: skip


def test_firing_carries_the_decision_inputs() -> None:
    r = build_rule(rule(name="hot", version="3", kind="window", window=2, agg="mean", above=70,
                        params={"on": True}, deadline_ms=1500))  # fmt: skip
    r.observe("d", {"t": 80}, ts_ms=0, now_s=0)
    firing = r.observe("d", {"t": 90}, ts_ms=1000, now_s=1)
    assert firing is not None
    assert (firing.name, firing.version, firing.action, firing.device) == ("hot", "3", "fan", "d")
    assert dict(firing.params) == {"on": True} and firing.deadline_ms == 1500
    assert dict(firing.inputs) == {"t": 90, "mean": 85}


def test_state_is_per_device() -> None:
    r = build_rule(rule(above=70, debounce=2))
    assert r.observe("a", {"t": 71}, ts_ms=0, now_s=0) is None
    assert r.observe("b", {"t": 71}, ts_ms=0, now_s=0) is None
    assert r.observe("a", {"t": 71}, ts_ms=1, now_s=1) is not None


def test_a_reading_without_the_metric_changes_nothing() -> None:
    r = build_rule(rule(above=70, debounce=2))
    r.observe("a", {"t": 71}, ts_ms=0, now_s=0)
    assert r.observe("a", {"other": 1}, ts_ms=1, now_s=1) is None
    assert r.observe("a", {"t": 71}, ts_ms=2, now_s=2) is not None


def test_scope_by_device_and_class() -> None:
    engine = ReflexEngine(
        RuleSet.build([
            rule(name="one", above=70, device="pump1"),
            rule(name="pumps", above=70, dclass="pump"),
            rule(name="all", above=70),
        ])
    )  # fmt: skip

    def names(device: str, dclass: str | None) -> set[str]:
        return {f.name for f in engine.evaluate(device, dclass, {"t": 80}, 0, 0.0)}

    assert names("pump1", "pump") == {"one", "pumps", "all"}
    assert names("pump2", "pump") == {"pumps", "all"}
    assert names("fan1", None) == {"all"}


def test_rebuild_keeps_state_of_unchanged_rules() -> None:
    first = RuleSet.build([rule(name="a", above=70, clear=60), rule(name="b", above=70, clear=60)])
    for r in first.rules:
        assert r.observe("d", {"t": 80}, ts_ms=0, now_s=0) is not None  # both latch
    second = RuleSet.build(
        [rule(name="a", above=70, clear=60), rule(name="b", above=75, clear=60)], previous=first
    )
    a, b = second.rules
    assert a is first.rules[0] and b is not first.rules[1]
    assert a.observe("d", {"t": 80}, ts_ms=1, now_s=1) is None  # still latched
    assert b.observe("d", {"t": 80}, ts_ms=1, now_s=1) is not None  # new rule, new state


def test_two_rules_with_one_name_are_refused() -> None:
    with pytest.raises(RuleError, match="two rules"):
        RuleSet.build([rule(name="x", above=1), rule(name="x", below=0)])


def test_pushed_rules_are_validated_like_the_config() -> None:
    assert parse_rules([{"name": "ok", "metric": "t", "above": 1, "action": "fan"}])[0].name == "ok"
    with pytest.raises(RuleError, match=r"rules\[1\]") as info:
        parse_rules([
            {"name": "ok", "metric": "t", "above": 1, "action": "fan"},
            {"name": "bad", "metric": "t", "action": "fan"},
        ])  # fmt: skip
    assert info.value.rule == "bad"


class FakeScorer:
    """Satisfies `edge.reflex.Scorer`: the score is the mean of the window's first column."""

    name = "fake"
    version = "7"
    metrics = ("t", "v")
    window = 3
    threshold = 50.0

    def __init__(self) -> None:
        self.calls = 0

    def score(self, window: Sequence[Sequence[float]]) -> float:
        self.calls += 1
        assert len(window) == self.window and all(len(row) == 2 for row in window)
        return sum(row[0] for row in window) / len(window)


def test_model_scores_a_full_window_and_fires_over_threshold() -> None:
    scorer = FakeScorer()
    model = ModelRule(ModelConfig(name="m", action="alert", cooldown_s=0), scorer)
    fired = [
        model.observe("d", {"t": t, "v": 1.0}, now_s=i)
        for i, t in enumerate([10, 10, 10, 100, 100, 100])
    ]
    assert [f is not None for f in fired] == [False, False, False, False, True, True]
    assert scorer.calls == 4  # from the third reading on
    last = fired[-1]
    assert last is not None and last.source == "model" and last.version == "7"
    assert (
        last.score == 100 and last.threshold == 50.0 and dict(last.inputs) == {"t": 100, "v": 1.0}
    )


def test_model_threshold_from_config_and_missing_features() -> None:
    model = ModelRule(ModelConfig(name="m", threshold=5.0, cooldown_s=0), FakeScorer())
    for i in range(3):
        assert model.observe("d", {"t": 1.0}, now_s=i) is None  # no `v`: not scored
    hits = [model.observe("d", {"t": 6.0, "v": 0.0}, now_s=i) for i in range(3)]
    assert hits[-1] is not None and hits[-1].threshold == 5.0
