"""The generated nats-server config: domains, durability, MQTT, leaf node link."""

from __future__ import annotations

from pathlib import Path

import pytest

import shared.natsrun
from shared.errors import ConfigError
from shared.natsrun import hub_config, leaf_config, leaf_domain


def test_public_api_is_pinned() -> None:
    assert sorted(shared.natsrun.__all__) == [
        "DEFAULT_GATEWAY",
        "ENV_VAR",
        "HUB_DOMAIN",
        "LocalTopology",
        "NatsServer",
        "ServerConfig",
        "find_nats_server",
        "free_port",
        "hub_config",
        "leaf_config",
        "leaf_domain",
        "nats_server_version",
    ]


def test_hub_config_has_domain_hub_and_a_leafnode_listener(tmp_path: Path) -> None:
    config = hub_config(store_dir=tmp_path, client_port=14222)
    text = config.render()
    assert config.client_port == 14222
    assert config.leafnode_port is not None
    assert 'domain: "hub"' in text
    assert f'listen: "127.0.0.1:{config.leafnode_port}"' in text
    assert 'sync_interval: "always"' in text
    assert "mqtt" not in text
    assert not config.temporary


def test_leaf_config_syncs_always_and_links_to_the_hub(tmp_path: Path) -> None:
    config = leaf_config("gw-7", "nats-leaf://127.0.0.1:7422", store_dir=tmp_path)
    text = config.render()
    assert config.domain == "edge-gw-7"
    assert 'server_name: "edge-gw-7"' in text
    assert 'sync_interval: "always"' in text
    assert f'mqtt {{\n  listen: "127.0.0.1:{config.mqtt_port}"' in text
    assert 'remotes: [ { urls: ["nats-leaf://127.0.0.1:7422"] } ]' in text
    assert set(config.ports()) == {"client", "monitoring", "mqtt"}


def test_sync_always_can_be_turned_off_for_benchmarks(tmp_path: Path) -> None:
    assert "sync_interval" not in hub_config(store_dir=tmp_path, sync_always=False).render()


def test_default_store_is_a_temporary_dir() -> None:
    config = hub_config()
    try:
        assert config.temporary
        assert config.store_dir.is_dir()
    finally:
        config.store_dir.rmdir()


@pytest.mark.parametrize("bad", ["", "gw.1", "gw 1", "gw>", "x" * 65])
def test_a_gateway_id_must_be_a_subject_token(bad: str) -> None:
    with pytest.raises(ConfigError, match="gateway_id"):
        leaf_domain(bad)
