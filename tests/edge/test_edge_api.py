"""The public surface of `edge`: what `from edge import ...` offers, and that it is cheap.

What a user notices: embedding the daemon takes two names, and `import edge.errors` (or a
`baton models` command) does not load the daemon, NATS or SQLite.
"""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    # A fresh interpreter: under pytest, `tests/edge` (no __init__.py) shadows the `edge`
    # package itself as a namespace package, and what `import edge` loads is the point.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_all_is_pinned() -> None:
    code = "import edge; print(edge.__all__, [getattr(edge, n).__name__ for n in edge.__all__])"
    names = ["DaemonStats", "EdgeConfig", "EdgeDaemon", "load_edge_config"]
    assert run(code) == f"{names} {names}"


def test_importing_edge_errors_does_not_load_the_daemon() -> None:
    code = (
        "import sys, edge.errors; "
        "print(sorted(m for m in ('edge.daemon', 'nats', 'sqlite_utils', 'numpy', 'paho') "
        "if m in sys.modules))"
    )
    assert run(code) == "[]"


# What a rules-only gateway does not need, and what each would cost its 50 MB budget.
NOT_LOADED = (
    "numpy", "onnxruntime", "paho",  # ONNX models and MQTT ingest only, when configured
    "prometheus_client",  # ~2.4 MB: /metrics is written by edge.ops.metrics
    "sqlite_utils",  # ~3 MB: the store speaks sqlite3; only the local agent loads it
    "fastapi", "starlette", "uvicorn", "httpx",  # the cloud's
)  # fmt: skip


def test_a_rules_only_daemon_never_loads_what_it_does_not_use() -> None:
    code = (
        "import sys, edge.cli, edge.daemon, edge.ingest.links, edge.store, edge.uplink; "
        f"print(sorted(m for m in {NOT_LOADED!r} if m in sys.modules))"
    )
    assert run(code) == "[]"
