"""The `--broker` URL: `mqtt://[user[:password]@]host[:port]` (also `tcp://`, or `host:port`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 1883  # IANA port for MQTT over TCP
_SCHEMES = ("mqtt", "tcp")


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse a broker URL; ValueError with a reason if it is not one."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"scheme {parts.scheme!r} is not one of {', '.join(_SCHEMES)}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}") from exc
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, user, password)

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"
