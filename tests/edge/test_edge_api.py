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


def test_a_rules_only_daemon_never_loads_numpy_onnxruntime_or_paho() -> None:
    code = (
        "import sys, edge.cli, edge.daemon, edge.ingest.links, edge.store; "
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'paho') if m in sys.modules))"
    )
    assert run(code) == "[]"
