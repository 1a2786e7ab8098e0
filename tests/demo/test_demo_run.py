"""`baton demo --duration 60 --no-browser --summary FILE`, run once for the module: the
summary a newcomer reads says the system worked and lost nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.demo.session import handoff_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DURATION_S = 60
RUN_TIMEOUT_S = 200  # start and drain on two loaded cores, around the minute itself
# What firmware-sim's demo scenario makes env-4 send: 3 truncated, 2 mistyped, 1 oversized.
BAD_PAYLOADS = {"malformed": 3, "invalid": 2, "too_large": 1}


@dataclass(frozen=True)
class Run:
    code: int
    output: str
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("demo-run")
    summary_path = tmp / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "shared.demo", "--duration", str(DURATION_S), "--no-browser",
         "--summary", str(summary_path), "--dir", str(tmp / "state"), "--port", "0"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert summary_path.exists(), f"no summary written; exit {done.returncode}:\n{output}"
    yield Run(done.returncode, output, json.loads(summary_path.read_text(encoding="utf-8")))


def test_the_demo_exits_cleanly_and_prints_what_happened(run: Run) -> None:
    assert run.code == 0, run.output
    for line in ("hub nats-server", "cloud orchestrator", "edge daemon gw1", "firmware-sim",
                 "dashboard: http://", "flaky uplink: hub down", "nothing lost  yes"):  # fmt: skip
        assert line in run.output, f"{line!r} missing from:\n{run.output}"
    assert all(code == 0 for code in run.summary["components"].values()), run.summary


def test_readings_flowed_through_reflex_and_reflex_acted(run: Run) -> None:
    readings, reflex = run.summary["readings"], run.summary["reflex"]
    assert readings["leaf_accepted"] > 0 and readings["edge_processed"] > 0
    assert reflex["actions"] > 0
    assert {"overheat", "cool-down"} <= set(reflex["by_name"]), reflex  # pump-0 cycles
    assert 0 < reflex["latency_p50_us"] <= reflex["latency_p99_us"]


def test_every_acknowledged_reading_reached_the_hub_and_was_applied_once(run: Run) -> None:
    readings = run.summary["readings"]
    assert readings["missing_at_hub"] == 0
    assert readings["hub_received"] == readings["leaf_accepted"]
    assert readings["cloud_applied"] == readings["hub_received"]
    assert readings["applied_twice"] == 0
    uplink = run.summary["uplink"]
    assert uplink["outage_s"] > 0 and uplink["delivered"] is True
    assert run.summary["nothing_lost"] is True


def test_every_bad_payload_was_quarantined_with_its_reason(run: Run) -> None:
    quarantine = run.summary["quarantine"]
    assert quarantine["by_reason"] == BAD_PAYLOADS
    assert quarantine["bad_payloads_sent"] == quarantine["total"] == sum(BAD_PAYLOADS.values())


def test_the_operators_desired_state_converged(run: Run) -> None:
    twin = run.summary["twin"]
    assert twin["desired_version"] == twin["reported_version"] == 1, twin
    assert twin["convergence_ms"] is not None


def test_the_cloud_planned(run: Run) -> None:
    plans = run.summary["plans"]
    assert plans["total"] >= 1 and plans["steps"] >= 1


def test_the_operator_session_was_handed_to_the_cloud_and_back(run: Run) -> None:
    handoffs = run.summary["handoffs"]
    assert handoffs["session"], handoffs  # baton chat opened a session on the gateway
    if not handoff_available():
        assert handoffs["owners"] == ["edge"] and "not available" in handoffs["skipped"]
        pytest.skip("the handoff protocol is not wired into the edge and the cloud yet (issue 6)")
    assert handoffs["skipped"] is None
    assert handoffs["owners"] == ["edge", "cloud", "edge"], handoffs
    assert handoffs["completed"] >= 2, handoffs
    # On a loaded machine a /handoff may not go through; the operator tries it again, and
    # the summary says so: every failed handoff is one the chat reported, in its words.
    assert handoffs["failed"] == len(handoffs["failures"]), handoffs
    assert handoffs["kept_by"] == "edge:gw1", handoffs  # the chat has gone; the daemon has it
