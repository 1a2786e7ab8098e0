"""`baton cloud run` as a real process: prints its API URL, serves, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner
from cloudkit import WAIT_S

from cloud.cli import cloud_group
from shared.compat import timeout
from shared.natsrun import NatsServer

EXAMPLE = Path(__file__).parents[2] / "cloud" / "cloud.example.toml"


async def test_run_prints_the_url_serves_and_exits_0_on_sigterm(
    hub: NatsServer, tmp_path: Path
) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'replica = "cli"\nstate_dir = "{tmp_path / "state"}"\n[planner]\nenabled = false\n'
    )
    with (tmp_path / "stderr.log").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.cli.main", "cloud", "run", "--config", str(config),
            "--nats", hub.client_url, "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            async with timeout(WAIT_S):
                line = (await proc.stdout.readline()).decode()
            assert "API at http://" in line, (tmp_path / "stderr.log").read_text()
            url = line.rsplit(" ", 1)[-1].strip()
            async with httpx.AsyncClient(base_url=url) as http:
                health = await http.get("/healthz")
            assert health.status_code == 200 and health.json()["replica"] == "cli"
            proc.send_signal(signal.SIGTERM)
            async with timeout(WAIT_S):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_check_config_accepts_the_example_and_refuses_typos(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cloud_group, ["check-config", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert '"durable": "cloud-ingest"' in ok.output
    typo = tmp_path / "typo.toml"
    typo.write_text("[ingest]\nbatchsize = 10\n")
    bad = runner.invoke(cloud_group, ["check-config", str(typo)])
    assert bad.exit_code == 2 and "batchsize" in bad.output
