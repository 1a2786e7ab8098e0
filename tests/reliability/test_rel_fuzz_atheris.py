"""Issue 10 item 10, coverage-guided: atheris (libFuzzer) against the decoders.

One short run in CI (a few seconds), minutes with the full flag. The target runs in its
own process (libFuzzer exits the process when it is done); its corpus starts from valid
messages of every decoder it drives, so mutations begin past the envelope checks.
Skipped where atheris is not installed (it needs a wheel for the platform, or clang and
libFuzzer to build one).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import JsonValue
from relkit_figures import Figures

from shared import codec
from shared.messages import (
    Command,
    CommandAck,
    DesiredState,
    GatewayEvent,
    Message,
    ModelUpdate,
    Reading,
    ReportedState,
    RulesUpdate,
    now_ms,
    rules_digest,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (no wheel for this platform, or no clang/libFuzzer)",
)

TARGET = Path(__file__).with_name("relkit_atheris_target.py")
REPO = Path(__file__).resolve().parents[2]
# Past the fuzzing time: starting Python, instrumenting imports, writing the summary.
STARTUP_S = 120


def _seeds() -> dict[int, list[Message]]:
    """Valid messages by the target's selector byte (see relkit_atheris_target.one_input)."""
    reading = Reading(device="dev-a", seq=1, ts_ms=now_ms(), metrics={"temp_c": 21.5})
    ack = CommandAck(cmd_id="c1", device="dev-a", ok=True)
    cmd = Command(device="dev-a", gw="gw1", action="fan", deadline_ms=now_ms() + 1000)
    desired = DesiredState(device="dev-a", gw="gw1", version=3, state={"on": True})
    rules: list[dict[str, JsonValue]] = [{"name": "hot", "metric": "temp_c", "above": 70.0}]
    return {
        0: [reading, ack, cmd, desired],  # decode, any kind
        4: [reading],  # decode(Reading)
        1: [reading],  # peek(Reading)
        2: [reading],  # facts on fleet.gw1.r.dev-a
        6: [ReportedState(device="dev-a", gw="gw1", applied_version=1, state={})],  # .twin.
        18: [GatewayEvent(gw="gw1", type="downlink")],  # .ev.
        3: [cmd],  # dispatch, cmd subject
        7: [desired],
        11: [RulesUpdate(gw="gw1", version="1", rules=rules, sha256=rules_digest(rules))],
        15: [ModelUpdate(gw="gw1", name="m", version="1", object_name="m1", sha256="0" * 64)],
    }


def _corpus(folder: Path) -> int:
    folder.mkdir()
    count = 0
    for selector, messages in _seeds().items():
        for msg in messages:
            for wire in (codec.encode(msg), codec.encode_json(msg)):
                (folder / f"seed-{count}").write_bytes(bytes([selector]) + wire)
                count += 1
    return count


def test_atheris_finds_no_crash_in_the_decoders(tmp_path: Path, figures: Figures) -> None:
    seconds = figures.scale(ci=3, full=300, name="seconds")
    seeds = _corpus(tmp_path / "corpus")
    done = subprocess.run(
        [
            sys.executable,
            str(TARGET),
            str(tmp_path / "corpus"),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={tmp_path}/",
            "-timeout=10",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + STARTUP_S,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out = done.stdout + done.stderr
    runs = re.search(r"Done (\d+) runs", out)
    coverage = re.findall(r"cov: (\d+)", out)
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    figures.record(
        seeds=seeds,
        runs=int(runs.group(1)) if runs else 0,
        coverage_edges=int(coverage[-1]) if coverage else 0,
        crashes=len(crashes),
    )
    assert done.returncode == 0 and not crashes, out[-4000:]
    assert runs is not None, out[-4000:]
