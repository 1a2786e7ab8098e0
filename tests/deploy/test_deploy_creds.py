"""`baton creds` and `shared.creds`: secrets in 0600 files and never on the terminal,
per-role permissions, and server configs that follow the store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shared.cli.creds import creds_group
from shared.creds import (
    CredsError,
    CredStore,
    IdentityExists,
    UnknownIdentity,
    hub_authorization,
    leaf_credentials,
    user_key_from_seed,
)
from shared.creds import permissions as perms
from shared.creds.keys import check_password


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secrets(store: CredStore) -> list[str]:
    found = [store.orchestrator_seed()]
    for gw in store.gateways():
        found += [store.gateway_seed(gw), store.edge_password(gw)]
    found += [store.device_password(dev) for dev in store.devices()]
    return found


def test_every_file_of_the_store_is_private(store: CredStore) -> None:
    assert _mode(store.path) == 0o700
    files = [p for p in store.path.rglob("*") if p.is_file()]
    assert len(files) >= 8  # index, lock, orchestrator seed, 2 gateways x 2, 2 devices
    assert {p: _mode(p) for p in files if _mode(p) != 0o600} == {}


def test_index_keeps_public_keys_and_hashes_only(store: CredStore) -> None:
    index = (store.path / "creds.json").read_text()
    assert not [secret for secret in _secrets(store) if secret in index]
    device = store.device("dev-a")
    assert check_password(store.device_password("dev-a"), device.password_hash)
    gw = store.gateway("gw1")
    assert user_key_from_seed(store.gateway_seed("gw1")).public == gw.public


def test_hub_authorization_names_public_keys_and_no_secret(store: CredStore) -> None:
    text = hub_authorization(store)
    assert not [secret for secret in _secrets(store) if secret in text]
    assert store.gateway("gw1").public in text and store.gateway("gw2").public in text
    assert '"fleet.gw1.>"' in text and '"fleet.gw2.>"' in text
    assert "fleet.>" in text  # the orchestrator's


def test_handoff_grants_keep_each_gateway_to_its_own_inbox(store: CredStore) -> None:
    gw1, orchestrator = perms.gateway("gw1"), perms.orchestrator(["gw1", "gw2"])
    # A gateway asks the cloud replicas and answers their requests; it hears only its
    # own owner inbox, and cannot answer on (or read) a consumer's `_INBOX.<nuid>`.
    assert {"cloud.session.>", "rtc.*.cloud", perms.REQUEST_REPLIES} <= set(gw1.publish)
    assert not [s for s in gw1.publish if s.startswith("handoff.") or s in ("_INBOX.>", ">")]
    assert perms.REQUEST_REPLIES == "_INBOX.*.*"
    # No purge of the SESSIONS stream (its filter is in the body).
    assert not [s for s in gw1.publish if ".STREAM.PURGE." in s]
    # The orchestrator answers on every gateway's inbox prefix, and serves the cloud's.
    assert {"_INBOX_gw1.>", "_INBOX_gw2.>", "cloud.session.>"} <= set(orchestrator.publish)
    assert "cloud.session.>" in orchestrator.subscribe
    text = hub_authorization(store)
    assert '"_INBOX_gw1.>"' in text and '"handoff.gw2.>"' in text


def test_leaf_credentials_hold_only_this_gateways_identities(store: CredStore) -> None:
    text = leaf_credentials(store, "gw1")
    assert text.startswith("# baton-gateway: gw1\n")
    assert store.gateway_seed("gw1") in text and store.gateway_seed("gw2") not in text
    assert store.device_password("dev-a") not in text  # the hash only
    assert store.device("dev-a").password_hash in text
    with pytest.raises(UnknownIdentity):
        leaf_credentials(store, "gw9")


def test_device_permissions_name_its_own_subjects_only() -> None:
    device = perms.device("pump-7")
    assert device.publish == ("baton.d.pump-7.r", "baton.d.pump-7.ack", "baton.d.pump-7.status")
    assert device.subscribe == ("baton.d.pump-7.cmd",)
    for subject in (*device.publish, *device.subscribe):
        assert not set(subject) & set("*>")
    gateway = perms.gateway("gw1")
    assert all("gw2" not in s for s in (*gateway.publish, *gateway.subscribe))
    # Replies to its own inbox prefix, its own handoff inbox, and WebRTC offers for the
    # sessions it owns (session ids carry no gateway: see permissions._gateway_handoff).
    assert gateway.subscribe == ("_INBOX_gw1.>", "handoff.gw1.>", "rtc.*.edge")
    with pytest.raises(ValueError):
        perms.device("a.b")  # a dot would add a subject level
    with pytest.raises(ValueError):
        perms.gateway(">")


def test_store_refuses_duplicates_unknown_gateways_and_bad_ids(tmp_path: Path) -> None:
    store = CredStore.init(tmp_path / "s")
    store.add_gateway("gw1")
    with pytest.raises(IdentityExists):
        store.add_gateway("gw1")
    with pytest.raises(UnknownIdentity):
        store.add_device("d1", "gw2")
    with pytest.raises(CredsError):
        store.add_device("bad/id", "gw1")
    old = store.gateway_seed("gw1")
    store.add_gateway("gw1", rotate=True)
    assert store.gateway_seed("gw1") != old
    store.add_device("d1", "gw1")
    with pytest.raises(CredsError, match="still has devices"):
        store.remove_gateway("gw1")
    assert store.remove_gateway("gw1", with_devices=True) == ["d1"]
    assert store.gateways() == {} and store.devices() == {}
    assert not (tmp_path / "s/devices/d1.password").exists()


def _run(args: list[str], store_dir: Path) -> Result:
    result = CliRunner().invoke(creds_group, ["--dir", str(store_dir), *args])
    assert result.exit_code == 0, result.output
    return result


def test_cli_walkthrough_prints_paths_and_never_a_secret(tmp_path: Path) -> None:
    store_dir = tmp_path / "fleet"
    outputs = [
        _run(["init"], store_dir),
        _run(["add-gateway", "gw1"], store_dir),
        _run(["add-device", "pump-7", "--gateway", "gw1"], store_dir),
        _run(["list"], store_dir),
        _run(["server-config", "hub"], store_dir),
        _run(["server-config", "leaf", "gw1", "-o", str(tmp_path / "gw1.creds")], store_dir),
    ]
    store = CredStore(store_dir)
    printed = "".join(result.output for result in outputs)
    assert not [secret for secret in _secrets(store) if secret in printed]
    assert str(store.device_password_path("pump-7")) in printed
    assert "device        pump-7" in printed
    assert _mode(tmp_path / "gw1.creds") == 0o600
    assert (tmp_path / "gw1.creds").read_text() == leaf_credentials(store, "gw1")

    _run(["remove-device", "pump-7"], store_dir)
    assert "pump-7" not in leaf_credentials(store, "gw1")


def test_cli_will_not_print_a_leaf_bundle_and_explains_itself(tmp_path: Path) -> None:
    _run(["init"], tmp_path / "s")
    result = CliRunner().invoke(
        creds_group, ["--dir", str(tmp_path / "s"), "server-config", "leaf", "gw1"]
    )
    assert result.exit_code != 0 and "--output" in result.output
    missing = CliRunner().invoke(creds_group, ["--dir", str(tmp_path / "none"), "list"])
    assert missing.exit_code != 0 and "baton creds init" in str(missing.exception)
    help_text = CliRunner().invoke(creds_group, ["--help"]).output
    for words in ("NKEY", "bcrypt", "baton/d/DEV/cmd", "server-config hub"):
        assert words in help_text


def test_public_surface_is_pinned() -> None:
    import shared.creds

    assert sorted(shared.creds.__all__) == sorted(
        [
            "EDGE_USER", "MIN_NATS_SERVER", "CredStore", "CredsError", "Device", "Gateway",
            "IdentityExists", "Permissions", "StoreNotFound", "UnknownIdentity", "UserKey",
            "downlink_consumer", "gateway_inbox_prefix", "hub_authorization",
            "leaf_credentials", "new_user_key", "user_key_from_seed", "write_atomic",
        ]
    )  # fmt: skip
    assert all(hasattr(shared.creds, name) for name in shared.creds.__all__)
