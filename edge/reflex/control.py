"""What changes the reflex engine at run time: SIGHUP, pushed rules, pushed models.

Each change is validated completely before one assignment swaps it in; a bad one raises
`RuleError` / `ModelError` and the rules and models in force stay as they were.

Which rules are in force: the last pushed set (`rules.pushed.json`) if there is one, else
the config file's. A SIGHUP is the operator saying "the file", so it drops the pushed set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import JsonValue, ValidationError

from edge.config import EdgeConfig, ModelConfig, RuleConfig, load_edge_config
from edge.errors import ModelError, RuleError
from edge.reflex import persist
from edge.reflex.engine import ReflexEngine, RuleSet
from edge.reflex.model import ModelRule, Scorer, load_scorer
from shared.errors import ConfigError
from shared.messages import ModelUpdate, RulesUpdate

log = logging.getLogger(__name__)

ScorerLoader = Callable[[Path | None], Scorer]


def parse_rules(raw: Sequence[dict[str, JsonValue]]) -> list[RuleConfig]:
    """Validate pushed rule dicts as `[[rules]]` entries; `RuleError` names the first bad one."""
    rules: list[RuleConfig] = []
    for index, item in enumerate(raw):
        try:
            rules.append(RuleConfig.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "rule"
            name = item.get("name") if isinstance(item, dict) else None
            raise RuleError(
                f"rules[{index}].{where}: {first['msg']}", rule=str(name) if name else None
            ) from exc
    return rules


class ReflexControl:
    """Builds the engine at start and swaps rules and models in it later."""

    def __init__(
        self, config: EdgeConfig, *, config_path: Path | None, loader: ScorerLoader = load_scorer
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._state_dir = config.state_dir
        self._loader = loader
        self.engine = ReflexEngine(RuleSet(()))

    def start(self) -> ReflexEngine:
        """Rules (pushed or from the config) and every configured model. Blocking."""
        pushed = persist.load_pushed_rules(self._state_dir)
        rules = RuleSet.build(self._config.rules, version="config")
        if pushed is not None:
            try:
                rules = RuleSet.build(parse_rules(pushed.rules), version=pushed.version)
                log.info("rules %s pushed from the hub are in force", pushed.version)
            except RuleError as exc:
                log.error("pushed rules %s unusable (%s); using the config's", pushed.version, exc)
        models = [self._load_model(cfg) for cfg in self._config.models]
        self.engine = ReflexEngine(rules, models)
        return self.engine

    def _load_model(self, cfg: ModelConfig) -> ModelRule:
        path = persist.pushed_model_path(self._state_dir, cfg.name) or cfg.path
        return ModelRule(cfg, self._loader(path))

    async def reload_from_file(self) -> RuleSet:
        """SIGHUP: the config file's rules replace the ones in force. `RuleError` if bad."""
        if self._config_path is None:
            raise RuleError("the daemon was started without a config file")
        try:
            config = await asyncio.to_thread(load_edge_config, self._config_path)
        except ConfigError as exc:
            raise RuleError(str(exc)) from exc
        rules = RuleSet.build(config.rules, version="config", previous=self.engine.rules)
        await asyncio.to_thread(persist.clear_pushed_rules, self._state_dir)
        self.engine.swap_rules(rules)
        return rules

    async def apply_rules(self, update: RulesUpdate) -> RuleSet:
        if not update.digest_ok:
            raise RuleError(f"rules {update.version}: sha256 does not match their content")
        configs = parse_rules(update.rules)
        rules = RuleSet.build(configs, version=update.version, previous=self.engine.rules)
        pushed = persist.PushedRules(update.version, list(update.rules))
        await asyncio.to_thread(persist.save_pushed_rules, self._state_dir, pushed)
        self.engine.swap_rules(rules)
        return rules

    async def apply_model(self, update: ModelUpdate, data: bytes) -> ModelRule:
        current = next((m for m in self.engine.models if m.name == update.name), None)
        if current is None:
            raise ModelError(f"no [[models]] entry named {update.name!r} on this gateway")
        like = getattr(current.scorer, "path", None)
        if not isinstance(like, Path):
            raise ModelError(f"model {update.name!r} has no file to take the card from")
        path = await asyncio.to_thread(
            persist.save_pushed_model, self._state_dir, update.name, update.version, data,
            like=like, threshold=update.threshold,
        )  # fmt: skip
        scorer = await asyncio.to_thread(self._loader, path)
        model = ModelRule(current.config, scorer)
        await asyncio.to_thread(
            persist.mark_model_in_force, self._state_dir, update.name, path, update.version
        )
        self.engine.swap_model(model)
        return model
