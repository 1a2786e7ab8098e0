"""The demo's parts on their own: state directory, child processes, summary, metrics,
schedule, the operator at a (fake) `baton chat`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from shared.demo.child import Child
from shared.demo.errors import ComponentFailed, DemoError
from shared.demo.operator import STATUS, Operator, Transcript
from shared.demo.probe import parse_edge_metrics
from shared.demo.session import SCRIPT, SessionResult, _read
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
    for duration in (20, 60):
        fits = Schedule.fitting(duration)
        assert fits.session_at_s < fits.outage_at_s
        # The outage may wait for the operator session, and still ends within the run.
        assert fits.outage_at_s + fits.outage_wait_s + fits.outage_s < duration


def test_the_chat_output_gives_the_session_its_owners_and_any_refusal() -> None:
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


# A stand-in for `baton chat`: the status line after each answer and each /handoff.
# `fail` /handoffs fail first (as one whose prepare timed out under load does); with
# `lag`, a /handoff moves the session but the status line after it still shows the old
# owner (a lease board behind the flip); `self_hosted_runs` runs say first that the
# chat runs the session itself (the daemon did not answer its open in time).
FAKE_CHAT = """
import pathlib, sys
fail, lag, self_hosted_runs, runs_file = int(sys.argv[1]), sys.argv[2] == "lag", int(sys.argv[3]), pathlib.Path(sys.argv[4])
runs = int(runs_file.read_text()) + 1 if runs_file.exists() else 1
runs_file.write_text(str(runs))
if runs <= self_hosted_runs:
    print("This chat runs the session itself: the edge daemon did not answer: TimeoutError().")
owner, epoch, shown = "edge", 1, "edge"
def status():
    print(f"[session s-{runs} · owner {shown} · epoch {epoch} · model rules · hub linked]", flush=True)
status()
while (line := sys.stdin.readline().strip()) != "/quit":
    if line.startswith("/handoff "):
        to = line.split()[1]
        if to == owner:
            pass
        elif fail:
            fail -= 1
            print(f"handoff failed: handoff of s-{runs} aborted at prepare: no {to} answered")
        else:
            owner, epoch = to, epoch + 1
            if not lag:
                shown = owner
        status()
        continue
    shown = owner
    if line != "/status":
        print(f"you> agent> answered: {line}")
    status()
"""


def fake_chat(tmp_path: Path, *, fail: int = 0, lag: bool = False, self_hosted: int = 0) -> Child:
    chat = Child("operator session", [], log_path=tmp_path / "session.log", cwd=tmp_path,
                 interactive=True)  # fmt: skip
    chat.args = [sys.executable, "-c", FAKE_CHAT, str(fail), "lag" if lag else "-",
                 str(self_hosted), str(tmp_path / "runs")]  # fmt: skip
    return chat


async def operate(tmp_path: Path, **chat: Any) -> tuple[SessionResult, Transcript]:
    operator = Operator(lambda: fake_chat(tmp_path, **chat), SCRIPT, hosted=True, retry_pause_s=0)
    transcript = await operator.run()
    result = _read(transcript.lines)
    result.failures = transcript.failures
    return result, transcript


async def test_the_operator_types_each_line_after_the_answer_to_the_one_before(
    tmp_path: Path,
) -> None:
    result, transcript = await operate(tmp_path)
    assert (result.session, result.owners, result.failures) == (
        "s-1",
        ["edge", "cloud", "edge"],
        [],
    )
    answered = [line for line in transcript.lines if "answered:" in line]
    assert [line.split("answered: ")[1] for line in answered] == [
        line for line in SCRIPT if not line.startswith("/")
    ]


async def test_a_handoff_that_did_not_go_through_is_tried_again_and_reported(
    tmp_path: Path,
) -> None:
    result, _ = await operate(tmp_path, fail=1)
    assert result.owners == ["edge", "cloud", "edge"]
    assert result.failures == ["handoff of s-1 aborted at prepare: no cloud answered"]
    assert result.failed == 1


async def test_a_move_the_status_line_shows_late_is_looked_at_again_not_repeated(
    tmp_path: Path,
) -> None:
    result, transcript = await operate(tmp_path, lag=True)
    assert result.owners == ["edge", "cloud", "edge"] and result.failures == []
    statuses = [line for line in transcript.lines if STATUS.search(line)]
    assert len(statuses) == 1 + len(SCRIPT) + 2  # the first, one a line, one /status a move


async def test_a_chat_running_the_session_beside_the_daemon_is_started_again(
    tmp_path: Path,
) -> None:
    result, transcript = await operate(tmp_path, self_hosted=1)
    assert result.session == "s-2" and result.owners == ["edge", "cloud", "edge"]
    assert not any("runs the session itself" in line for line in transcript.lines)
    assert "runs the session itself" in (tmp_path / "session.log").read_text()
