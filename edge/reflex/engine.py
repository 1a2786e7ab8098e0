"""The reflex engine: every rule and model that applies to a reading, in one pass.

The rule set is immutable once built and swapped in by one attribute assignment, so a
SIGHUP or a pushed rules update never leaves the hot path with half a set. Rules whose
config did not change keep their per-device state across a swap (a latched hysteresis
stays latched).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from edge.config import RuleConfig
from edge.errors import RuleError
from edge.reflex.model import ModelRule
from edge.reflex.rules import Rule, build_rule
from edge.reflex.trigger import Firing

log = logging.getLogger(__name__)


class RuleSet:
    """An immutable, versioned list of rules, indexed by the scope they apply to."""

    def __init__(self, rules: Sequence[Rule], version: str = "config") -> None:
        self.rules = tuple(rules)
        self.version = version
        self._by_device: dict[str, list[Rule]] = {}
        self._others: list[Rule] = []
        for rule in self.rules:
            if rule.config.device is not None:
                self._by_device.setdefault(rule.config.device, []).append(rule)
            else:
                self._others.append(rule)

    @classmethod
    def build(
        cls,
        configs: Iterable[RuleConfig],
        *,
        version: str = "config",
        previous: RuleSet | None = None,
    ) -> RuleSet:
        """Build from configs; `RuleError` on two rules with one name (decisions name them)."""
        kept = {rule.name: rule for rule in previous.rules} if previous is not None else {}
        rules: list[Rule] = []
        seen: set[str] = set()
        for cfg in configs:
            if cfg.name in seen:
                raise RuleError("two rules have this name", rule=cfg.name)
            seen.add(cfg.name)
            old = kept.get(cfg.name)
            rules.append(old if old is not None and old.config == cfg else build_rule(cfg))
        return cls(rules, version)

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(rule.config.action for rule in self.rules)

    def candidates(self, device: str) -> Iterable[Rule]:
        specific = self._by_device.get(device)
        return self._others if specific is None else (*specific, *self._others)

    def __len__(self) -> int:
        return len(self.rules)


class ReflexEngine:
    """Rules plus models; `evaluate` is pure CPU and runs on the event loop."""

    def __init__(self, rules: RuleSet, models: Sequence[ModelRule] = ()) -> None:
        self.rules = rules
        self.models = tuple(models)

    def evaluate(
        self,
        device: str,
        dclass: str | None,
        metrics: Mapping[str, float],
        ts_ms: int,
        now_s: float,
    ) -> list[Firing]:
        """Every rule, then every model (`evaluate_rules` + `evaluate_models`)."""
        fired = self.evaluate_rules(device, dclass, metrics, ts_ms, now_s)
        fired += self.evaluate_models(device, dclass, metrics, now_s)
        return fired

    def evaluate_rules(
        self,
        device: str,
        dclass: str | None,
        metrics: Mapping[str, float],
        ts_ms: int,
        now_s: float,
    ) -> list[Firing]:
        """The rules that fire on this reading: microseconds each."""
        fired: list[Firing] = []
        for rule in self.rules.candidates(device):
            if rule.applies(device, dclass):
                firing = rule.observe(device, metrics, ts_ms, now_s)
                if firing is not None:
                    fired.append(firing)
        return fired

    def evaluate_models(
        self, device: str, dclass: str | None, metrics: Mapping[str, float], now_s: float
    ) -> list[Firing]:
        """The models that fire on this reading: an inference each (tens of µs), so the
        hot path sends what the rules decided first."""
        fired: list[Firing] = []
        for model in self.models:
            if model.applies(device, dclass):
                firing = model.observe(device, metrics, now_s)
                if firing is not None:
                    fired.append(firing)
        return fired

    def swap_rules(self, rules: RuleSet) -> None:
        self.rules = rules

    def swap_model(self, model: ModelRule) -> None:
        """Replace the model of the same name (or add it)."""
        others = [m for m in self.models if m.name != model.name]
        self.models = (*others, model)

    @property
    def actions(self) -> frozenset[str]:
        return self.rules.actions | {m.config.action for m in self.models}
