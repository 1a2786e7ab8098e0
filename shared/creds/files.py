"""Writing files that hold secrets: mode 0600 from the first byte, replaced atomically.

A secret written with `open()` and chmod'ed afterwards is world-readable for a moment
under the default umask; `mkstemp` creates the file 0600, and `os.replace` swaps it in
whole, so a reader sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
DIR_MODE = 0o700


def write_atomic(path: Path, text: str, *, mode: int = SECRET_MODE) -> None:
    """Write `text` to `path` (created with `mode`), replacing it atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
