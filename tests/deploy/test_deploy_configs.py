"""Shipped configs are valid as shipped: every NATS config passes `nats-server -t`, the
compose file and the Kubernetes manifests parse and point at files that exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.creds import CredStore, hub_authorization

from ._support import DEPLOY, HUB_NODES, NATS_DIR, REPO, Certs, nats_server_test, rewrite

CLOUD = DEPLOY / "cloud"


@pytest.mark.parametrize("name", ["dev/hub.conf", "dev/leaf.conf"])
def test_dev_configs_pass_nats_server_t(name: str) -> None:
    done = nats_server_test(NATS_DIR / name)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("node", HUB_NODES)
def test_hub_node_configs_pass_nats_server_t(
    node: int, tmp_path: Path, certs: Certs, store: CredStore
) -> None:
    """hub-N.conf as shipped, next to hub-common.conf with only the cert paths moved."""
    shutil.copy(NATS_DIR / f"hub-{node}.conf", tmp_path)
    common = rewrite(
        (NATS_DIR / "hub-common.conf").read_text(),
        {
            '"/etc/nats/certs/leaf-server.pem"': f'"{certs.cert}"',
            '"/etc/nats/certs/leaf-server-key.pem"': f'"{certs.key}"',
        },
        "hub-common.conf",
    )
    (tmp_path / "hub-common.conf").write_text(common)
    (tmp_path / "auth.conf").write_text(hub_authorization(store))
    done = nats_server_test(tmp_path / f"hub-{node}.conf")
    assert done.returncode == 0, done.stderr


def test_hub_nodes_share_one_cluster_and_name_themselves() -> None:
    common = (NATS_DIR / "hub-common.conf").read_text()
    routes = re.findall(r'"nats-route://(hub-\d):6222"', common)
    assert routes == [f"hub-{n}" for n in HUB_NODES]
    assert 'sync_interval: "always"' in common and 'domain: "hub"' in common
    for node in HUB_NODES:
        text = (NATS_DIR / f"hub-{node}.conf").read_text()
        assert f'server_name: "hub-{node}"' in text and 'include "hub-common.conf"' in text


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((CLOUD / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_runs_three_hub_nodes_and_two_orchestrators_from_shipped_files() -> None:
    services = _compose()["services"]
    hubs = sorted(name for name in services if name.startswith("hub-"))
    assert hubs == [f"hub-{n}" for n in HUB_NODES]  # the route host names
    for name in hubs:
        volumes = services[name]["volumes"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in volumes if v.startswith(".")}
        assert mounts["/etc/nats/hub.conf"] == f"../nats/{name}.conf"
        for source in mounts.values():
            if source.startswith("../"):
                assert (CLOUD / source).is_file(), source
        assert "/etc/nats/auth.conf" in mounts and "/etc/nats/certs" in mounts
    orchestrators = [name for name in services if name.startswith("orchestrator-")]
    assert len(orchestrators) == 2
    published = [services[name]["ports"][0] for name in orchestrators]
    assert published == ["8080:8080", "8081:8080"]
    build = services["orchestrator-1"]["build"]
    assert (CLOUD / build["context"] / build["dockerfile"]).resolve() == CLOUD / "Dockerfile"


def test_dockerfile_copies_what_exists() -> None:
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", (CLOUD / "Dockerfile").read_text(), re.M)
    sources = [source for line in copies for source in line.split()]
    assert sources and all((REPO / source).exists() for source in sources), sources


def test_kubernetes_manifests_parse_and_kustomize_lists_them() -> None:
    k8s = CLOUD / "k8s"
    kinds = []
    for path in sorted(k8s.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            kinds.append(doc.get("kind", "values"))
    assert {"Deployment", "Service", "Namespace", "Kustomization", "PodDisruptionBudget"} <= set(
        kinds
    )
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    assert all((k8s / resource).is_file() for resource in kustomization["resources"])
    values = yaml.safe_load((k8s / "nats-values.yaml").read_text())["config"]
    assert values["cluster"] == {"enabled": True, "replicas": 3}
    assert values["jetstream"]["merge"] == {"domain": "hub", "sync_interval": "always"}
    assert values["leafnodes"]["tls"]["enabled"] is True
    assert values["merge"]["$include"] == "auth.conf"
