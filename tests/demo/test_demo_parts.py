"""The demo's parts on their own: state directory, child processes, summary, metrics,
schedule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shared.demo.child import Child
from shared.demo.errors import ComponentFailed, DemoError
from shared.demo.probe import parse_edge_metrics
from shared.demo.summary import (
    DemoSummary,
    Handoffs,
    Plans,
    Quarantine,
    Readings,
    Reflex,
    Twin,
    Uplink,
    percentile,
)
from shared.demo.timeline import Schedule
from shared.demo.workdir import MARKER, Workdir


def test_a_new_directory_is_laid_out_and_marked(tmp_path: Path) -> None:
    work = Workdir(tmp_path / "demo")
    work.prepare()
    assert (work.root / MARKER).exists()
    assert all(p.is_dir() for p in (work.nats, work.cloud, work.edge, work.logs))


def test_a_second_run_empties_only_what_the_demo_wrote(tmp_path: Path) -> None:
    work = Workdir(tmp_path)
    work.prepare()
    (work.nats / "old-store").mkdir()
    (work.root / "notes.txt").write_text("mine")
    work.prepare()
    assert not (work.nats / "old-store").exists()
    assert (work.root / "notes.txt").read_text() == "mine"


def test_a_foreign_directory_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(DemoError, match="not made by"):
        Workdir(tmp_path).prepare()
    with pytest.raises(DemoError, match="is a file"):
        Workdir(tmp_path / "data").prepare()


def child(tmp_path: Path, code: str) -> Child:
    child = Child("probe", [], log_path=tmp_path / "probe.log", cwd=tmp_path)
    child.args = [sys.executable, "-c", code]  # not `baton`: any program will do here
    return child


async def test_a_child_is_ready_on_its_line_and_its_output_is_logged(tmp_path: Path) -> None:
    probe = child(tmp_path, "import time; print('warming'); print('ready at 42', flush=True); "
                            "time.sleep(60)")  # fmt: skip
    await probe.start()
    try:
        match = await probe.wait_for_line(r"ready at (\d+)", timeout_s=30)
        assert match.group(1) == "42" and probe.running
    finally:
        await probe.aclose(grace_s=5)
        await probe.aclose()  # twice is safe
    assert probe.returncode is not None and not probe.running
    assert "warming" in (tmp_path / "probe.log").read_text()


async def test_a_child_that_exits_before_it_is_ready_names_its_log(tmp_path: Path) -> None:
    probe = child(tmp_path, "import sys; print('bad config'); sys.exit(2)")
    await probe.start()
    with pytest.raises(ComponentFailed, match=r"exited with code 2; see .*probe\.log"):
        await probe.wait_for_line("ready", timeout_s=30)
    await probe.aclose()


def summary(**readings: int) -> DemoSummary:
    counts = {"sensors_sent": 10, "leaf_accepted": 9, "edge_processed": 10, "hub_received": 9,
              "cloud_applied": 9, "missing_at_hub": 0, "applied_twice": 0, **readings}  # fmt: skip
    return DemoSummary(
        duration_s=60.0, devices=5, readings=Readings(**counts),
        reflex=Reflex(3, {"overheat": 3}, 300, 500, 600, {"ok": 3}),
        quarantine=Quarantine(1, {"malformed": 1}, 1),
        uplink=Uplink(5.0, 120, True), twin=Twin("pump-0", 1, 1, 180),
        plans=Plans(1, {"succeeded": 1}, 2, {"anomaly": 1}),
        handoffs=Handoffs("s-1", ["edge"], 0, 0, [], "handoff not available"),
    )  # fmt: skip


def test_nothing_lost_needs_every_leaf_reading_at_the_hub_and_applied_once() -> None:
    assert summary().nothing_lost
    assert "nothing lost  yes" in summary().lines()[-1]
    assert not summary(missing_at_hub=1, hub_received=8, cloud_applied=8).nothing_lost
    assert not summary(cloud_applied=8).nothing_lost
    assert "NO: 1 accepted readings missing" in summary(missing_at_hub=1).lines()[-1]
    assert '"nothing_lost": true' in summary().to_json()
    assert "pump-0 desired v1 converged in 180 ms" in "\n".join(summary().lines())


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5, 1, 3], 0.5) == 3
    assert percentile(list(range(1, 101)), 0.99) == 100


def test_edge_metrics_are_read_from_prometheus_text() -> None:
    text = "\n".join([
        '# TYPE baton_edge_readings counter',
        'baton_edge_readings_total{result="ok"} 120.0',
        '# TYPE baton_edge_quarantine counter',
        'baton_edge_quarantine_total{reason="malformed"} 3.0',
        'baton_edge_quarantine_total{reason="too_large"} 1.0',
        '# TYPE baton_edge_commands counter',
        'baton_edge_commands_total{origin="rule",result="sent"} 4.0',
        'baton_edge_commands_total{origin="downlink",result="refused"} 2.0',
        '# TYPE baton_edge_uplink_backlog gauge',
        'baton_edge_uplink_backlog 17.0',
    ])  # fmt: skip
    counts = parse_edge_metrics(text + "\n")
    assert counts.readings_ok == 120
    assert counts.quarantined == {"malformed": 3, "too_large": 1}
    assert counts.commands_sent == {"rule": 4} and counts.commands_refused == 2
    assert counts.backlog == 17


def test_a_short_run_still_fits_the_outage_and_the_session() -> None:
    assert Schedule.fitting(None) == Schedule()
    short = Schedule.fitting(20)
    assert short.session_at_s < short.outage_at_s
    assert short.outage_at_s + short.outage_s < 20


def test_the_chat_output_gives_the_session_its_owners_and_any_refusal() -> None:
    from shared.demo.session import _read

    moved = _read([
        "[session s-1 · owner edge · epoch 0 · model rules · hub linked]",
        "agent> rule overheat v1 fired on pump-0 ...",
        "[session s-1 · owner cloud · epoch 2 · model rules · hub linked]",
        "[session s-1 · owner cloud · epoch 2 · model rules · hub linked]",
        "[session s-1 · owner edge · epoch 3 · model rules · hub linked]",
    ])  # fmt: skip
    assert (moved.session, moved.owners, moved.skipped) == ("s-1", ["edge", "cloud", "edge"], None)
    refused = _read([
        "[session s-2 · owner edge · epoch 0 · model rules · hub linked]",
        "you> Handoff is not available here (no edge.handoff); the session stays on the edge.",
    ])  # fmt: skip
    assert refused.skipped == "handoff not available (no edge.handoff)"
    assert _read(["config error: bad"]).skipped is not None
