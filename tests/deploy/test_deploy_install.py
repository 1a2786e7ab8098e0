"""`install.sh` as an image build or a test runs it: `--root DIR`, no pip.

It lays out the expected tree with the expected modes, its units pass `systemd-analyze
verify`, a second run changes nothing but the version stamp, a flag changes only what
it names, and `--uninstall` removes baton but keeps (and names) the data. The leaf's
unit creates the gateway's UPLINK stream before the leaf serves a sensor, so a reading
acknowledged on a gateway whose edge daemon never ran is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nats
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_edge_config
from shared import codec, subjects
from shared.creds import EDGE_USER, CredStore
from shared.messages import Reading, now_ms

from ._support import GATEWAY, INSTALL_SH, installed_leaf, nats_server_test, run_install

STAMP = "opt/baton/INSTALLED"
ENSURE_STREAMS = "/opt/baton/venv/bin/baton nats ensure-streams --leaf-config /etc/baton/leaf.conf"
EXPECTED = {
    # path: mode
    "etc/baton/leaf.conf": 0o644,
    "etc/baton/gateway.conf": 0o644,
    "etc/baton/creds.conf": 0o600,
    "etc/baton/edge.toml": 0o644,
    "etc/baton/edge.env": 0o600,
    "etc/baton/hub-ca.pem": 0o644,
    "etc/baton/install.env": 0o644,
    "etc/systemd/system/baton-nats.service": 0o644,
    "etc/systemd/system/baton-edge.service": 0o644,
    "usr/lib/sysusers.d/baton.conf": 0o644,
    "usr/lib/tmpfiles.d/baton.conf": 0o644,
    "opt/baton/share/README.md": 0o644,
    "opt/baton/share/edge.example.toml": 0o644,
    STAMP: 0o644,
    "var/lib/baton/nats": 0o750,
    "var/lib/baton/edge": 0o750,
}


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under `root`: (mode, sha256 of the content, or "dir")."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        found[rel] = (path.stat().st_mode & 0o777, digest)
    return found


def test_install_lays_out_the_gateway_tree(installed: Path, store: CredStore) -> None:
    tree = snapshot(installed)
    for rel, mode in EXPECTED.items():
        assert rel in tree, f"missing {rel}"
        assert tree[rel][0] == mode, f"{rel}: mode {oct(tree[rel][0])}, want {oct(mode)}"
    etc = installed / "etc" / "baton"
    gateway_conf = (etc / "gateway.conf").read_text()
    assert f'BATON_DOMAIN: "edge-{GATEWAY}"' in gateway_conf
    assert 'BATON_HUB_URLS: ["tls://127.0.0.1:7422"]' in gateway_conf
    assert 'ca_file: "/etc/baton/hub-ca.pem"' in gateway_conf
    assert (etc / "leaf.conf").read_text() == (INSTALL_SH.parents[1] / "nats/leaf.conf").read_text()
    # The daemon's password travels in the 0600 env file, never in edge.toml.
    env = (etc / "edge.env").read_text()
    password = store.edge_password(GATEWAY)
    assert env.count(f"BATON_EDGE_NATS_URL=nats://edge:{password}@") == 1
    assert password not in (etc / "edge.toml").read_text()


def test_installed_configs_are_valid(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tree names final paths (/etc/baton/hub-ca.pem); point that one into the tree.
    etc = shutil.copytree(installed / "etc/baton", tmp_path / "etc-baton")
    gateway_conf = etc / "gateway.conf"
    ca = f'"{installed / "etc/baton/hub-ca.pem"}"'
    gateway_conf.write_text(gateway_conf.read_text().replace('"/etc/baton/hub-ca.pem"', ca))
    done = nats_server_test(etc / "leaf.conf")
    assert done.returncode == 0, done.stderr
    # The edge daemon reads edge.toml plus the environment systemd gives it.
    env = (installed / "etc/baton/edge.env").read_text().splitlines()
    key, _, value = next(line for line in env if line.startswith("BATON_")).partition("=")
    monkeypatch.setenv(key, value)
    config = load_edge_config(installed / "etc/baton/edge.toml")
    assert config.gateway == GATEWAY
    assert config.state_dir == Path("/var/lib/baton/edge")
    assert config.nats_url.startswith("nats://edge:") and config.nats_url.endswith(
        "@127.0.0.1:4222"
    )


def test_units_restart_watch_and_confine_the_services(installed: Path) -> None:
    units = installed / "etc/systemd/system"
    edge = (units / "baton-edge.service").read_text()
    nats_unit = (units / "baton-nats.service").read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "MemoryMax=1G",
                 "ExecStart=/opt/baton/venv/bin/baton edge run --config /etc/baton/edge.toml",
                 "EnvironmentFile=-/etc/baton/edge.env", "ReadWritePaths=/var/lib/baton/edge",
                 "PrivateDevices=yes"):  # fmt: skip
        assert line in edge.splitlines(), line
    assert "ExecStart=/opt/baton/venv/bin/nats-server -c /etc/baton/leaf.conf" in nats_unit
    # Before the leaf serves a sensor, its UPLINK stream is in the store (a check that
    # failed stops the unit; it never runs the leaf without it).
    prepare = "ExecStartPre=" + ENSURE_STREAMS
    assert nats_unit.index(prepare) < nats_unit.index("ExecStart=/")
    for unit in (edge, nats_unit):
        lines = unit.splitlines()
        for line in ("Restart=always", "User=baton", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet="):  # fmt: skip
            assert line in lines, line
        assert not [line for line in lines if "@" in line and "=" in line], "unrendered template"


def _ensure_streams_argv(leaf_conf: Path) -> list[str]:
    """The unit's `baton nats ensure-streams` line, run from this checkout's baton."""
    argv = shlex.split(ENSURE_STREAMS.replace("/etc/baton/leaf.conf", str(leaf_conf)))
    return [sys.executable, "-m", "shared.cli.main", *argv[1:]]


async def _run(argv: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def _publish_qos1(port: int, device: str, password: str, payload: bytes) -> None:
    """One MQTT QoS 1 PUBLISH as `device`, returning once the leaf's PUBACK arrived."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
    client.username_pw_set(device, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(subjects.mqtt_reading(device), payload, qos=1)
        info.wait_for_publish(timeout=30)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_the_leaf_keeps_readings_acknowledged_before_any_daemon_ran(
    installed: Path, tmp_path: Path, store: CredStore, no_nats_left: None
) -> None:
    # The installed leaf on free ports, as its unit runs it: ExecStartPre, then the leaf.
    folder = tmp_path / "leaf"
    leaf, mqtt_port = installed_leaf(installed, folder)
    leaf_conf = folder / "leaf.conf"
    shutil.copy(installed / "etc/baton/leaf.conf", leaf_conf)
    assert "created UPLINK" in await _run(_ensure_streams_argv(leaf_conf))
    assert "all present" in await _run(_ensure_streams_argv(leaf_conf))  # idempotent
    device = "dev-a"
    reading = Reading(device=device, seq=0, ts_ms=now_ms(), metrics={"t": 21.5})
    async with leaf:
        # A sensor, the moment the leaf is up; no edge daemon has ever started.
        await asyncio.to_thread(
            _publish_qos1, mqtt_port, device, store.device_password(device), codec.encode(reading)
        )
        nc = await nats.connect(
            leaf.client_url, user=EDGE_USER, password=store.edge_password(GATEWAY)
        )
        try:
            js = nc.jetstream(domain=subjects.gateway_domain(GATEWAY))
            stored = await js.get_last_msg(
                subjects.UPLINK_STREAM, subjects.mqtt_to_nats(subjects.mqtt_reading(device))
            )
        finally:
            await nc.close()
    assert codec.decode(stored.data or b"", Reading) == reading


def _verify_problems(units: list[Path]) -> list[str]:
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # With --no-pip there is no venv: the executables are the only thing allowed missing.
    return [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "/opt/baton/venv/bin/" not in line
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(installed: Path) -> None:
    units = sorted((installed / "etc/systemd/system").glob("baton-*.service"))
    assert len(units) == 2
    assert _verify_problems(units) == []


def test_second_run_changes_nothing_but_the_stamp(installed: Path) -> None:
    before = snapshot(installed)
    done = run_install("--root", installed, "--no-pip")
    after = snapshot(installed)
    changed = {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}
    assert changed <= {STAMP}
    assert "already up to date" in done.stdout


def test_a_flag_changes_what_it_names_and_keeps_operator_edits(installed: Path) -> None:
    toml = installed / "etc/baton/edge.toml"
    toml.write_text(toml.read_text() + "\n[http]\nport = 9500\n")
    before = snapshot(installed)
    run_install("--root", installed, "--no-pip", "--mqtt-listen", "0.0.0.0:8883")
    after = snapshot(installed)
    changed = {rel for rel in before if before[rel] != after[rel]} - {STAMP}
    assert changed == {"etc/baton/gateway.conf", "etc/baton/install.env"}
    assert 'BATON_MQTT_LISTEN: "0.0.0.0:8883"' in (installed / "etc/baton/gateway.conf").read_text()
    assert "port = 9500" in toml.read_text()
    # Remembered: a later run without the flag keeps it.
    run_install("--root", installed, "--no-pip")
    assert 'BATON_MQTT_LISTEN: "0.0.0.0:8883"' in (installed / "etc/baton/gateway.conf").read_text()


def test_refuses_what_it_cannot_do(tmp_path: Path, leaf_creds_file: Path) -> None:
    root = tmp_path / "root"
    no_creds = run_install("--root", root, "--no-pip", "--hub", "tls://h:7422", check=False)
    assert no_creds.returncode == 1 and "needs --creds" in no_creds.stderr
    mismatch = run_install(
        "--root", root, "--no-pip", "--creds", leaf_creds_file, "--hub", "tls://h:7422",
        "--gateway", "gw9", check=False,
    )  # fmt: skip
    assert mismatch.returncode == 1 and "differs from the credentials" in mismatch.stderr
    unknown = run_install("--frobnicate", check=False)
    assert unknown.returncode == 1 and "unknown option" in unknown.stderr
    assert not root.exists() or not any(root.rglob("*.conf"))


def test_dry_run_changes_nothing(tmp_path: Path, leaf_creds_file: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    done = run_install(
        "--root", root, "--no-pip", "--dry-run", "--creds", leaf_creds_file, "--hub", "tls://h:7422"
    )
    assert "would write /etc/baton/creds.conf (mode 0600)" in done.stdout
    assert list(root.iterdir()) == []


def test_uninstall_removes_baton_and_names_the_data_it_keeps(installed: Path) -> None:
    (installed / "var/lib/baton/nats/jetstream").mkdir()
    done = run_install("--root", installed, "--uninstall")
    for gone in ("opt/baton", "etc/systemd/system/baton-edge.service", "etc/baton/leaf.conf",
                 "etc/baton/gateway.conf", "usr/lib/sysusers.d/baton.conf"):  # fmt: skip
        assert not (installed / gone).exists(), gone
    for kept in ("var/lib/baton/nats/jetstream", "etc/baton/edge.toml", "etc/baton/creds.conf"):
        assert (installed / kept).exists(), kept
    assert "/var/lib/baton  data" in done.stdout and "/etc/baton/creds.conf  secrets" in done.stdout
    run_install("--root", installed, "--uninstall", "--purge")
    assert not (installed / "var/lib/baton").exists() and not (installed / "etc/baton").exists()


def test_help_and_shellcheck() -> None:
    done = run_install("--help")
    assert "--root DIR" in done.stdout and "--uninstall" in done.stdout
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    lint = subprocess.run(
        ["shellcheck", str(INSTALL_SH)], capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout
