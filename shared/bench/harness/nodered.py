"""Node-RED 4 as the peer: installed from the npm registry into a cache dir, started
headless (editor and HTTP off), running one flow on the same broker as the daemon:

    mqtt in  bench/nr/+/r (JSON)  →  function: temp_c over the limit?  →  mqtt out  …/cmd

Node-RED 5 needs Node.js ≥ 22.9, so the major is pinned to 4 (Node.js ≥ 18).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from shared.bench.harness.child import Child
from shared.bench.harness.mqtt import host_port

PACKAGE = "node-red@4"
MIN_NODE_MAJOR = 18
INSTALL_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 120.0
PREFIX = "bench/nr"
LIMIT = 50.0  # the same threshold as the daemon's bench rule (temp_c above 50)

# The function node: the same decision as the daemon's rule, a JSON command back.
FUNCTION = f"""
const r = msg.payload;
if (!r || !r.metrics || !(r.metrics.temp_c > {LIMIT})) {{ return null; }}
const device = msg.topic.split("/")[2];
const now = Date.now();
return {{
    topic: "{PREFIX}/" + device + "/cmd",
    payload: JSON.stringify({{v: 1, kind: "command", device: device, action: "fan",
                              params: {{on: true}}, issued_ms: now, deadline_ms: now + 2000}})
}};
"""


class NodeRedUnavailable(Exception):
    """npm or a recent enough Node.js is missing, or the install failed: the peer is skipped."""


def node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


async def install(cache: Path) -> Path:
    """red.js of Node-RED 4 under `cache` (installed on first use); `NodeRedUnavailable`."""
    target = cache / "node-red-4"
    red = target / "node_modules" / "node-red" / "red.js"
    if red.exists():
        return red
    npm = shutil.which("npm")
    if npm is None:
        raise NodeRedUnavailable("npm is not on PATH, so Node-RED 4 cannot be installed")
    major = node_major()
    if major is None or major < MIN_NODE_MAJOR:
        raise NodeRedUnavailable(f"Node-RED 4 needs Node.js >= {MIN_NODE_MAJOR}; found {major}")
    target.mkdir(parents=True, exist_ok=True)
    argv = [
        npm,
        "install",
        "--prefix",
        str(target),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        PACKAGE,
    ]
    npm_child = Child(argv, target / "npm-install.log")
    await npm_child.start()
    try:
        code = await npm_child.wait(INSTALL_TIMEOUT_S)
    finally:
        await npm_child.stop()
    if code != 0 or not red.exists():
        raise NodeRedUnavailable(
            f"`npm install {PACKAGE}` failed: {npm_child.error(f'code {code}')}"
        )
    return red


def settings_js(user_dir: Path) -> str:
    settings = {
        "uiPort": 0,
        "uiHost": "127.0.0.1",
        "httpAdminRoot": False,
        "httpNodeRoot": False,
        "flowFile": "flows.json",
        "userDir": str(user_dir),
        "credentialSecret": False,
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
        "diagnostics": {"enabled": False, "ui": False},
        "runtimeState": {"enabled": False, "ui": False},
        "telemetry": {"enabled": False, "updateNotification": False},
        "externalModules": {"autoInstall": False},
    }
    return f"module.exports = {json.dumps(settings, indent=2)};\n"


def flows(mqtt_url: str) -> list[dict[str, object]]:
    host, port = host_port(mqtt_url)
    broker = {
        "id": "broker",
        "type": "mqtt-broker",
        "name": "leaf",
        "broker": host,
        "port": str(port),
        "clientid": "bench-node-red",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": "4",
        "keepalive": "60",
        "cleansession": True,
    }
    return [
        {"id": "tab", "type": "tab", "label": "baton bench"},
        broker,
        {
            "id": "in",
            "type": "mqtt in",
            "z": "tab",
            "name": "readings",
            "topic": f"{PREFIX}/+/r",
            "qos": "0",
            "datatype": "json",
            "broker": "broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [["fn"]],
        },
        {
            "id": "fn",
            "type": "function",
            "z": "tab",
            "name": "threshold",
            "func": FUNCTION,
            "outputs": 1,
            "wires": [["out"]],
        },
        {
            "id": "out",
            "type": "mqtt out",
            "z": "tab",
            "name": "commands",
            "topic": "",
            "qos": "0",
            "retain": "false",
            "broker": "broker",
            "wires": [],
        },
    ]


def node_red_child(red: Path, user_dir: Path, mqtt_url: str) -> Child:
    user_dir.mkdir(parents=True, exist_ok=True)
    settings = user_dir / "settings.js"
    settings.write_text(settings_js(user_dir), encoding="utf-8")
    (user_dir / "flows.json").write_text(json.dumps(flows(mqtt_url), indent=1), encoding="utf-8")
    node = shutil.which("node") or "node"
    argv = [node, str(red), "--settings", str(settings), "--userDir", str(user_dir)]
    return Child(argv, user_dir / "node-red.log")


async def start(child: Child) -> float:
    """Start Node-RED and wait until its flows run and its broker node connected: seconds."""
    await child.start()
    await child.wait_for(lambda line: "Connected to broker" in line, READY_TIMEOUT_S)
    return child.since_start()
