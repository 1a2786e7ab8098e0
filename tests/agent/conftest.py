"""Fixtures for the agent tests.

edge_config    an `EdgeConfig` with its state in tmp_path; rule `overheat` (temperature
               > 70 → fan on), `[actuate]` allowing `valve` with `opening` in [0, 100]
seeded         the gateway's real SQLite holding data for pump1/pump2: an hour of
               rollups, an `overheat` decision with the command it sent, a twin
edge_store     an `AsyncStore` open on it
edge_state     `EdgeState` over it, actuating into a `MemorySink` through the real guard
tiny_gguf      a tiny random llama GGUF written by `shared.agent.tinygguf`
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.agent import EdgeState, LocalActuation
from edge.config import EdgeConfig
from edge.ingest.memory import MemorySink
from edge.store import ActionRecord, AsyncStore, AuditBatch, EdgeStore, RollupDelta, TwinRecord
from shared.agent.tinygguf import write_tiny_llama
from shared.messages import Command, Decision, now_ms

MINUTE_MS = 60_000


@pytest.fixture
def edge_config(tmp_path: Path) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "gateway": "gw1",
        "state_dir": tmp_path / "edge-state",
        "rules": [
            {"name": "overheat", "metric": "temperature", "above": 70.0, "clear": 65.0,
             "debounce": 2, "action": "fan", "params": {"on": True}},
        ],
        "actuate": {"allow": ["valve"], "bounds": {"valve": {"opening": (0.0, 100.0)}}},
    })  # fmt: skip


@pytest.fixture
def seeded(edge_config: EdgeConfig) -> EdgeConfig:
    """The gateway's database with data in it (written synchronously, closed again)."""
    store = EdgeStore.in_dir(edge_config.state_dir, max_quarantine=100, max_decisions=100)
    try:
        store.write(_history(now_ms()))
        store.save_twin(TwinRecord("pump1", 3, {"speed": 40}, 2, {"speed": 35}, now_ms() - 30_000))
    finally:
        store.close()
    return edge_config


@pytest.fixture
async def edge_store(seeded: EdgeConfig) -> AsyncIterator[AsyncStore]:
    store = await AsyncStore.open(seeded.state_dir, max_quarantine=100, max_decisions=100)
    try:
        yield store
    finally:
        await store.aclose()


def _history(now: int) -> AuditBatch:
    minute = now - now % MINUTE_MS
    rollups = [
        RollupDelta("pump1", "temperature", minute - i * MINUTE_MS, 60.0 + i, 62.0 + i,
                    (61.0 + i) * 10, 10)
        for i in range(60)
    ] + [RollupDelta("pump2", "temperature", minute, 40.0, 41.0, 405.0, 10)]  # fmt: skip
    cmd = Command(
        device="pump1", gw="gw1", action="fan", params={"on": True},
        issued_ms=now - 5_000, deadline_ms=now - 3_000, source="rule:overheat@1",
    )  # fmt: skip
    decision = Decision(
        gw="gw1", device="pump1", source="rule", name="overheat", version="1",
        inputs={"temperature": 72.5}, command=cmd, latency_us=180, ts_ms=now - 5_000,
    )  # fmt: skip
    return AuditBatch(
        decisions=[decision], actions=[ActionRecord(cmd, "sent", "rule")], rollups=rollups
    )


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def edge_state(edge_config: EdgeConfig, edge_store: AsyncStore, sink: MemorySink) -> EdgeState:
    actuation = LocalActuation(edge_config, edge_store, sink)
    return EdgeState("gw1", edge_store, rules=lambda: edge_config.rules, execute=actuation.execute)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return write_tiny_llama(path, words=("pump", "fan", "temperature"), seed=1)
