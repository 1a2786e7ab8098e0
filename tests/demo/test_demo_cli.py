"""`baton demo` refuses to start with one clear line and exit code 2 when it cannot."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from shared.demo.cli import demo

START_TIMEOUT_S = 60


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.demo", "--no-browser", "--duration", "1", *args],
        capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_directory_the_demo_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    done = run_demo("--dir", str(tmp_path), "--port", "0")
    assert done.returncode == 2
    assert "not made by `baton demo`" in one_line(done.stderr)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_a_busy_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo("--dir", str(tmp_path / "d"), "--port", str(port))
    assert done.returncode == 2
    assert f"port {port} is in use" in one_line(done.stderr)


def test_a_missing_nats_server_is_one_line(tmp_path: Path) -> None:
    done = run_demo("--dir", str(tmp_path / "d"), "--port", "0",
                    env={"BATON_NATS_SERVER": str(tmp_path / "no-such-binary")})  # fmt: skip
    assert done.returncode == 2
    assert "nats-server" in one_line(done.stderr)


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(demo, ["--help"])
    assert result.exit_code == 0
    for option in ("--duration", "--no-browser", "--summary", "--dir", "--port"):
        assert option in result.output
