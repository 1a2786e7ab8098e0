"""Local TCP ports for test and development servers.

A free port is found by binding port 0 and reading what the kernel gave. The port is
released before nats-server binds it, so another process could take it in between; the
window is a few milliseconds, and `check_free` just before each start turns the rare loss
into a clear `PortInUse` instead of a server that never comes up.
"""

from __future__ import annotations

import errno
import random
import socket

from shared.errors import PortInUse

HOST = "127.0.0.1"


# Ports are picked below the kernel's ephemeral range: a port taken from that range (by
# binding port 0) can be handed to some client's outgoing connection between the pick
# and nats-server binding it, which made busy test runs fail with PortInUse.
_LOW_PORT = 10_000
_PICK_TRIES = 200


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now, outside the ephemeral range."""
    high = _ephemeral_low() - 1
    for _ in range(_PICK_TRIES):
        port = _random.randint(_LOW_PORT, high)
        if is_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        picked: int = sock.getsockname()[1]
        return picked


_random = random.SystemRandom()


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
