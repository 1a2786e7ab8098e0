"""The pieces under the benchmarks: percentiles, ABBA alternation, the runner's verdicts,
the TOML the daemon is started with, Prometheus text."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from shared.bench.context import Context, alternate
from shared.bench.harness.edge import (
    EVERY_READING_RULE,
    SCORING_MODEL,
    EdgeSpec,
    parse_metrics,
    write_edge_config,
)
from shared.bench.row import Row
from shared.bench.runner import ORDER, Skip, run_one, select
from shared.bench.stats import Summary, percentile


def test_percentiles_interpolate() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert Summary.of([5.0]) == Summary(5.0, 5.0, 1)
    with pytest.raises(ValueError):
        percentile([], 50)


async def test_alternate_runs_abba() -> None:
    order: list[str] = []

    def arm(name: str):  # type: ignore[no-untyped-def]
        async def run() -> list[float]:
            order.append(name)
            return [float(len(order))]

        return run

    pooled = await alternate(3, {"a": arm("a"), "b": arm("b")})
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert pooled == {"a": [1.0, 4.0, 5.0], "b": [2.0, 3.0, 6.0]}


def test_select_keeps_the_canonical_order() -> None:
    assert select(None) == list(ORDER)
    assert select("peer, reflex") == ["reflex", "peer"]
    with pytest.raises(ValueError, match="nope"):
        select("reflex,nope")


async def test_runner_records_rows_skips_and_failures(tmp_path: Path) -> None:
    ctx = Context(work=tmp_path, quick=True, echo=lambda _line: None)

    async def rows(_ctx: Context) -> list[Row]:
        return [Row("x", "ms", 1.0)]

    async def skip(_ctx: Context) -> list[Row]:
        raise Skip("npm is not on PATH")

    async def boom(_ctx: Context) -> list[Row]:
        raise RuntimeError("the daemon exited")

    ok = await run_one(ctx, SimpleNamespace(name="a", title="A", run=rows))
    skipped = await run_one(ctx, SimpleNamespace(name="b", title="B", run=skip))
    failed = await run_one(ctx, SimpleNamespace(name="c", title="C", run=boom))
    assert (ok.status, ok.rows) == ("ok", (Row("x", "ms", 1.0),))
    assert (skipped.status, skipped.reason) == ("skipped", "npm is not on PATH")
    assert (failed.status, failed.reason) == ("failed", "RuntimeError: the daemon exited")


def test_the_generated_edge_toml_is_a_valid_daemon_config(tmp_path: Path) -> None:
    from edge.config import load_edge_config

    spec = EdgeSpec(
        nats_url="nats://127.0.0.1:4999", state_dir=tmp_path / "state",
        rules=[EVERY_READING_RULE], models=[SCORING_MODEL], command_format="json",
    )  # fmt: skip
    config = load_edge_config(write_edge_config(tmp_path, spec))
    assert config.nats_url == "nats://127.0.0.1:4999" and config.http.port == 0
    assert [r.name for r in config.rules] == ["bench-hot"]
    assert config.rules[0].cooldown_s == 0 and config.rules[0].params == {"on": True}
    assert config.models[0].threshold == 1e12 and config.actuate.format == "json"


def test_prometheus_text_is_read_with_sorted_labels() -> None:
    text = (
        "# HELP baton_edge_readings_total readings\n"
        'baton_edge_readings_total{result="ok"} 42.0\n'
        'baton_edge_commands_total{result="sent",origin="rule"} 3.0\n'
        "baton_edge_up 1.0\n"
    )
    metrics = parse_metrics(text)
    assert metrics['baton_edge_readings_total{result="ok"}'] == 42.0
    assert metrics['baton_edge_commands_total{origin="rule",result="sent"}'] == 3.0
    assert metrics["baton_edge_up"] == 1.0
