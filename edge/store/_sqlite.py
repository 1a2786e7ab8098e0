"""Import sqlite-utils without the numpy and pandas it imports only to map their types.

sqlite-utils imports both at import time when they are installed (baton installs numpy
for the ONNX path). The daemon never stores a numpy value, and numpy alone would cost a
rules-only gateway ~15 MB of its 50 MB budget, so while sqlite-utils loads, the two are
marked absent; a later `import numpy` (an ONNX model) works as usual.
"""

from __future__ import annotations

import sys
from types import ModuleType

_HEAVY = ("numpy", "pandas")


def import_sqlite_utils() -> ModuleType:
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in _HEAVY if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return sqlite_utils
