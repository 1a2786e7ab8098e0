"""What changes the daemon from outside: commands, desired state, rules and models.

What a user notices: a late command from a session's previous owner is refused (and the
cloud hears why); desired state reaches the device once per version and is reported as
applied, across restarts; a bad rules file or update is refused and the old rules keep
working; a pushed rule set survives a restart until the operator sends SIGHUP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.errors import GuardRefused, RuleError
from edge.store import EdgeStore
from shared.codec import decode, encode
from shared.messages import (
    Command,
    CommandAck,
    Decision,
    DesiredState,
    Reading,
    ReportedState,
    RulesUpdate,
    now_ms,
    rules_digest,
)

Start = Callable[..., Awaitable[tuple[EdgeDaemon, Any]]]
ConfigFactory = Callable[..., EdgeConfig]
TOPIC = "baton.d.pump1.r"


def hot(seq: int, value: float = 90.0, metric: str = "temp_c") -> bytes:
    return encode(Reading(device="pump1", seq=seq, ts_ms=now_ms() + seq, metrics={metric: value}))


def session_command(epoch: int, **fields: Any) -> Command:
    base: dict[str, Any] = {
        "device": "pump1", "action": "fan", "params": {"on": False},
        "deadline_ms": now_ms() + 5000, "session": "s1", "epoch": epoch,
    }  # fmt: skip
    base.update(fields)
    return Command(**base)


async def test_stale_epoch_is_refused_recorded_and_acked_up(memory_daemon: Start) -> None:
    daemon, parts = await memory_daemon()
    await daemon.on_command(session_command(5))
    with pytest.raises(GuardRefused, match="stale_epoch"):
        await daemon.on_command(stale := session_command(4))
    await daemon.flush()

    assert len(parts.sink.sent) == 1  # only the epoch-5 command reached the device
    assert daemon.stats().refused == {"stale_epoch": 1}
    [ack_sub] = parts.uplink.of_kind("ack")
    ack = decode(ack_sub.payload, CommandAck)
    assert (ack.cmd_id, ack.ok, ack.reason, ack_sub.key) == (
        stale.cmd_id, False, "guard:stale_epoch", stale.cmd_id,
    )  # fmt: skip
    statuses = {r["cmd_id"]: r["status"] for r in await daemon.store.call(EdgeStore.actions)}
    assert statuses[stale.cmd_id] == "refused"


async def test_fencing_survives_a_restart(memory_daemon: Start, edge_config: ConfigFactory) -> None:
    config = edge_config(http={"enabled": False})
    first, _ = await memory_daemon(config)
    await first.on_command(session_command(7))
    await first.aclose()
    second, parts = await memory_daemon(config)
    with pytest.raises(GuardRefused, match="stale_epoch"):
        await second.on_command(session_command(6))
    assert parts.sink.sent == []


async def test_desired_state_applied_once_per_version_and_reported(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    config = edge_config(http={"enabled": False})
    daemon, parts = await memory_daemon(config)
    state = {"fan.on": True, "set_load.load": 0.5}
    desired = DesiredState(device="pump1", gw="gw1", version=3, state=state)
    await daemon.on_desired(desired)
    await daemon.on_desired(desired)  # a re-send while the device answers: nothing new
    sent = [decode(s.payload, Command) for s in parts.sink.sent]
    assert [(c.action, c.params, c.source) for c in sent] == [
        ("fan", {"on": True}, "twin:v3"), ("set_load", {"load": 0.5}, "twin:v3"),
    ]  # fmt: skip
    assert parts.uplink.of_kind("twin") == []  # nothing applied before the device says so
    for cmd in sent:
        await device_ack(parts, cmd)
    await daemon.on_desired(desired)  # a redelivery: not applied again, reported again

    reports = [decode(s.payload, ReportedState) for s in parts.uplink.of_kind("twin")]
    assert [(r.applied_version, r.state) for r in reports] == [(3, state)] * 2
    assert len(parts.sink.sent) == 2
    await daemon.aclose()

    again, parts = await memory_daemon(config)  # the applied version is on disk
    await again.on_desired(DesiredState(device="pump1", gw="gw1", version=2, state={}))
    assert parts.sink.sent == []
    newer = DesiredState(device="pump1", gw="gw1", version=4, state={"fan.on": False})
    await again.on_desired(newer)
    assert decode(parts.sink.sent[0].payload, Command).params == {"on": False}


async def device_ack(
    parts: Any, cmd: Command, *, ok: bool = True, reason: str | None = None
) -> None:
    """The device's answer, as the leaf delivers it to the daemon."""
    ack = CommandAck(cmd_id=cmd.cmd_id, device=cmd.device, ok=ok, reason=reason)
    await parts.source.inject(f"baton.d.{cmd.device}.ack", encode(ack))


def write_rules(path: Path, above: float, *, extra: str = "") -> None:
    path.write_text(
        f"""
state_dir = "{path.parent / "state"}"
[http]
enabled = false
[[rules]]
name = "hot"
metric = "temp_c"
above = {above}
action = "fan"
cooldown_s = 0
{extra}
"""
    )


async def test_sighup_reload_swaps_rules_and_refuses_a_bad_file(
    memory_daemon: Start, tmp_path: Path
) -> None:
    path = tmp_path / "edge.toml"
    write_rules(path, above=100)
    config = EdgeConfig(**_toml(path), uplink={"enabled": False}, downlink={"enabled": False})
    daemon, parts = await memory_daemon(config, config_path=path)
    await parts.source.inject(TOPIC, hot(1, 90))
    assert parts.sink.sent == []

    write_rules(path, above=80)
    assert await daemon.reload_rules() is True
    await parts.source.inject(TOPIC, hot(2, 90))
    assert len(parts.sink.sent) == 1

    write_rules(path, above=80, extra='kind = "rate"')  # a rate rule without rate_per_s
    assert await daemon.reload_rules() is False
    await parts.source.inject(TOPIC, hot(3, 90))
    assert len(parts.sink.sent) == 2  # the old rule still fires
    assert daemon.metrics.reloads == {"ok": 1, "refused": 1}


def _toml(path: Path) -> dict[str, Any]:
    from shared.config import read_toml

    return read_toml(path)


def rules_update(
    version: str, rules: list[dict[str, Any]], *, digest: str | None = None
) -> RulesUpdate:
    return RulesUpdate(gw="gw1", version=version, sha256=digest or rules_digest(rules), rules=rules)


async def test_pushed_rules_apply_persist_and_a_bad_update_is_refused(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    config = edge_config(http={"enabled": False})
    daemon, parts = await memory_daemon(config)
    good = [{"name": "cold", "metric": "temp_c", "below": 0, "action": "heater", "cooldown_s": 0}]
    await daemon.on_rules(rules_update("v2", good))
    assert daemon.stats().rules_version == "v2"

    with pytest.raises(RuleError, match="sha256"):
        await daemon.on_rules(rules_update("v3", good, digest="0" * 64))
    bad = [{"name": "x", "metric": "t", "action": "fan"}]
    with pytest.raises(RuleError, match="above or below"):
        await daemon.on_rules(rules_update("v3", bad))
    assert daemon.stats().rules_version == "v2"
    await daemon.aclose()

    again, parts = await memory_daemon(config)
    assert again.stats().rules_version == "v2"
    await parts.source.inject(TOPIC, hot(1, -5))
    assert decode(parts.sink.sent[0].payload, Command).action == "heater"
    # The new rules' action is allowed for outside commands too.
    await again.on_command(session_command(1, action="heater"))


class FakeScorer:
    name = "fake"
    version = "9"
    metrics = ("vibration",)
    window = 2
    threshold = 5.0

    def score(self, window: Sequence[Sequence[float]]) -> float:
        return max(row[0] for row in window)


async def test_configured_model_fires_through_the_daemon(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    loaded: list[Path | None] = []

    def loader(path: Path | None) -> FakeScorer:
        loaded.append(path)
        return FakeScorer()

    config = edge_config(
        http={"enabled": False}, models=[{"name": "bearing", "action": "maintenance_alert"}]
    )
    daemon, parts = await memory_daemon(config, scorer_loader=loader)
    for seq, value in enumerate([1.0, 2.0, 9.0]):
        await parts.source.inject(TOPIC, hot(seq, value, metric="vibration"))
    assert loaded == [None]
    [sent] = parts.sink.sent
    assert decode(sent.payload, Command).action == "maintenance_alert"
    await daemon.flush()  # the decision is recorded once the command has left
    decision = decode(parts.uplink.of_kind("dec")[0].payload, Decision)
    assert (decision.source, decision.name, decision.version, decision.score) == (
        "model", "bearing", "9", 9.0,
    )  # fmt: skip


async def test_a_rules_command_is_sent_before_the_model_scores_the_reading(
    memory_daemon: Start, edge_config: ConfigFactory
) -> None:
    sent_when_scored: list[int] = []
    parts_box: list[Any] = []

    class WatchingScorer(FakeScorer):
        def score(self, window: Sequence[Sequence[float]]) -> float:
            sent_when_scored.append(len(parts_box[0].sink.sent))
            return 0.0

    rule = {"name": "hot", "metric": "vibration", "above": 5.0, "cooldown_s": 0, "action": "fan"}
    config = edge_config(http={"enabled": False}, rules=[rule], models=[{"name": "bearing"}])
    _, parts = await memory_daemon(config, scorer_loader=lambda _path: WatchingScorer())
    parts_box.append(parts)
    for seq, value in enumerate([1.0, 2.0, 9.0]):  # the rule fires on the third
        await parts.source.inject(TOPIC, hot(seq, value, metric="vibration"))
    # The model's inference (tens of µs) no longer delays the rule's command.
    assert sent_when_scored == [0, 1]  # scored from the second reading (window 2)
