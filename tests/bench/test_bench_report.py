"""The reporter: goals read against ratios and absolute figures, the table marks each row."""

from __future__ import annotations

import json
from pathlib import Path

from shared.bench.report import Results, markdown, verdict, write_json
from shared.bench.row import Goal, Row, skipped_row
from shared.bench.runner import BenchResult

REFLEX_GOALS = (Goal("ratio", "<=", 1.5), Goal("ratio_p99", "<=", 2.0))


def reflex_row(median: float, p99: float) -> Row:
    return Row(
        "reflex round trip", "ms", median, p99,
        reference="bare paho echo", ref_median=1.0, ref_p99=2.0, goals=REFLEX_GOALS,
    )  # fmt: skip


def test_ratio_goals_are_met_at_the_limit_and_missed_past_it() -> None:
    assert reflex_row(1.5, 4.0).met() is True
    assert reflex_row(1.51, 4.0).met() is False  # p50 1.51x
    assert reflex_row(1.0, 4.2).met() is False  # p99 2.1x
    assert verdict(reflex_row(1.2, 3.0)) == "✓"
    assert verdict(reflex_row(2.0, 3.0)) == "✗"


def test_a_higher_is_better_goal() -> None:
    drain = Row("drain", "msgs/s", 700.0, reference="raw", ref_median=1000.0,
                goals=(Goal("ratio", ">=", 0.7),))  # fmt: skip
    assert drain.ratio == 0.7 and drain.met() is True
    slow = Row("drain", "msgs/s", 690.0, reference="raw", ref_median=1000.0,
               goals=(Goal("ratio", ">=", 0.7),))  # fmt: skip
    assert slow.met() is False


def test_absolute_goals_need_no_reference() -> None:
    handoff = Row("handoff 64 KB", "ms", 12.0, 140.0,
                  goals=(Goal("median", "<=", 20.0, "ms"), Goal("p99", "<=", 100.0, "ms")))  # fmt: skip
    assert handoff.ratio is None and handoff.met() is False
    assert [g.describe() for g in handoff.goals] == ["p50 ≤ 20 ms", "p99 ≤ 100 ms"]
    assert Goal("median", ">=", 12_000, "readings/s").describe() == "p50 ≥ 12,000 readings/s"


def test_nothing_to_judge_without_goals_values_or_reference() -> None:
    assert Row("rss", "MB", 40.0).met() is None
    assert Row("x", "ms", 1.0, 2.0, goals=REFLEX_GOALS).met() is None  # no reference
    assert skipped_row("webrtc", "not landed", Goal("ratio", "<=", 1.3)).met() is None
    assert verdict(Row("rss", "MB", 40.0)) == "–"  # noqa: RUF001


def results(tmp_path: Path) -> Results:
    ok = BenchResult(
        "reflex", "round trip", "ok", 3.0, (reflex_row(1.2, 3.0), reflex_row(2.0, 5.0))
    )
    skipped = BenchResult("webrtc", "data channel", "skipped", 0.1, reason="aiortc missing")
    failed = BenchResult("drain", "uplink", "failed", 1.0, reason="RuntimeError: boom")
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11", "libraries": {"nats-py": "2"}}
    return Results("2026-01-01T00:00:00+00:00", 4.1, True, "baton bench --quick", machine,
                   [ok, skipped, failed])  # fmt: skip


def test_markdown_table_marks_each_row(tmp_path: Path) -> None:
    text = markdown(results(tmp_path))
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith(
        "| benchmark | figure | median | p99 | reference | ratio | goal | met |"
    )
    assert lines[1].endswith("| 1.20× / 1.50× | p50 ≤ 1.5× ref; p99 ≤ 2× ref | ✓ |")  # noqa: RUF001
    assert lines[2].endswith("| 2.00× / 2.50× | p50 ≤ 1.5× ref; p99 ≤ 2× ref | ✗ |")  # noqa: RUF001
    assert "skipped: aiortc missing" in lines[3]
    assert "failed: RuntimeError: boom" in lines[4]
    assert "Test CPU, 2 cores" in text and "nats-py 2" in text


def test_results_json_keeps_every_benchmark_and_its_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json(results(tmp_path), path)
    doc = json.loads(path.read_text())
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    assert [r["met"] for r in by_name["reflex"]["rows"]] == [True, False]
    assert by_name["reflex"]["rows"][0]["ratio"] == 1.2
    assert (by_name["webrtc"]["status"], by_name["webrtc"]["reason"]) == (
        "skipped",
        "aiortc missing",
    )
    assert doc["machine"]["cores"] == 2 and doc["quick"] is True
