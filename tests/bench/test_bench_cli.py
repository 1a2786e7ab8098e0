"""`baton bench` end to end: `--quick` runs every benchmark (or says why it skipped one)
and leaves results.json and results.md behind. Timings are not asserted here: goals are
the benchmark's business, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.bench.cli import bench
from shared.bench.runner import ORDER

QUICK_BUDGET_S = 600  # a CI box is slower than a laptop; the run itself takes ~2-3 min


def test_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench, ["--only", "reflex,nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown benchmark(s) nope" in result.output


def test_cli_runs_the_in_process_benchmarks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(bench, ["--quick", "--only", "onnx,llm", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert [b["name"] for b in doc["benchmarks"]] == ["onnx", "llm"]
    for b in doc["benchmarks"]:
        assert b["status"] in ("ok", "skipped"), b
    assert "| onnx | ONNX inference per window |" in (out / "results.md").read_text()
    assert not (out / "work").exists()


@pytest.mark.slow
@pytest.mark.timeout(QUICK_BUDGET_S)
def test_quick_run_covers_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "shared.bench", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=QUICK_BUDGET_S - 30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text())
    benchmarks = {b["name"]: b for b in doc["benchmarks"]}
    assert list(benchmarks) == list(ORDER)
    for name, b in benchmarks.items():
        assert b["status"] in ("ok", "skipped"), (name, b["reason"])
        if b["status"] == "skipped":
            assert b["reason"], name
        else:
            assert b["rows"], name
            assert all(r["median"] is not None or r["skipped"] for r in b["rows"]), name
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["python"]
    table = (out / "results.md").read_text()
    for name in ORDER:
        assert f"| {name} |" in table
    assert "[1/9] reflex" in done.stderr  # progress while it runs
