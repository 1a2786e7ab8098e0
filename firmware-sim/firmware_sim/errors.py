"""The simulator's errors, rooted under `shared.errors.BatonError`.

    BatonError
    └── SimError                  anything the simulator raises on purpose
        ├── ScenarioError         a scenario file is invalid (file, field, reason); also a
        │                         ConfigError, so generic config handling catches it
        └── BrokerUnreachable     the MQTT broker refused or never answered (host, port);
                                  also a TransportError: retrying later may help

The CLI turns each into one line and exit code 2.
"""

from __future__ import annotations

from shared.errors import BatonError, ConfigError, TransportError


class SimError(BatonError):
    """Root of the simulator's own errors."""


class ScenarioError(SimError, ConfigError):
    """A scenario file is missing, not TOML, or fails validation: `file: field: reason`."""


class BrokerUnreachable(SimError, TransportError):
    """The broker could not be reached or refused the connection."""

    retryable = True

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot reach broker {host}:{port}: {reason}")
