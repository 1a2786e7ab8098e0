"""Local TCP ports for test and development servers.

A free port is found by binding port 0 and reading what the kernel gave. The port is
released before nats-server binds it, so another process could take it in between; the
window is a few milliseconds, and `check_free` just before each start turns the rare loss
into a clear `PortInUse` instead of a server that never comes up.
"""

from __future__ import annotations

import errno
import socket

from shared.errors import PortInUse

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def is_free(port: int, host: str = HOST) -> bool:
    """True when a listener could bind `port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # nats-server (Go) sets SO_REUSEADDR on its listeners, so a port whose old
        # connections sit in TIME_WAIT (after a restart) is free for it, and for us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def check_free(ports: dict[str, int], host: str = HOST) -> None:
    """Raise `PortInUse` naming the first port (and its role) that is taken."""
    for role, port in ports.items():
        if not is_free(port, host):
            raise PortInUse(f"{role} port {host}:{port} is already in use")
