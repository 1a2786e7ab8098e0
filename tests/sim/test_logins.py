"""Each device logs in as itself: per-device passwords, from the API or a `baton creds` store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from firmware_sim import BrokerUnreachable, Simulator
from simhelpers import run_mosquitto

from shared.creds import CredStore

PASSWORDS = {"pump-0": "s3cret-0", "pump-1": "s3cret-1"}


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[str]:
    """mosquitto that knows only the two pumps, each by its own password."""
    passwd = tmp_path / "passwd"
    for user, password in PASSWORDS.items():
        create = ["-c"] if not passwd.exists() else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    with run_mosquitto(tmp_path, f"allow_anonymous false\npassword_file {passwd}\n") as url:
        yield url


async def test_devices_log_in_with_their_own_passwords(locked_broker: str) -> None:
    logins = {dev: (dev, pw) for dev, pw in PASSWORDS.items()}.__getitem__
    async with Simulator(
        locked_broker, "pump-overheat", devices=2, rate=20, duration=0.2, logins=logins
    ) as sim:
        summary = await sim.run()
    assert summary.sent == summary.acked == 8


async def test_a_refused_login_is_broker_unreachable(locked_broker: str) -> None:
    with pytest.raises(BrokerUnreachable, match="refused: Not authorized"):
        async with Simulator(locked_broker, "pump-overheat", logins=lambda dev: (dev, "wrong")):
            pass


def test_the_cli_reads_device_passwords_from_a_creds_store(
    locked_broker: str, tmp_path: Path
) -> None:
    store = CredStore.init(tmp_path / "creds")
    store.add_gateway("gw1")
    store.add_device("pump-0", gateway="gw1")
    password = store.device_password("pump-0")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "pump-0", password], check=True)
    # mosquitto reads its password file at start; this test's broker restarts to see it.
    with run_mosquitto(
        tmp_path / "again" if (tmp_path / "again").mkdir() is None else tmp_path,
        f"allow_anonymous false\npassword_file {passwd}\n",
    ) as url:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "shared.cli.main",
                "sim",
                "run",
                "--broker",
                url,
                "--rate",
                "20",
                "--duration",
                "0.2",
                "--no-progress",
                "--creds",
                str(tmp_path / "creds"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "sent 4, acked 4" in result.stdout
