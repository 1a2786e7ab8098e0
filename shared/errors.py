"""The one exception tree of `shared`; `edge` and `cloud` root theirs under `BatonError`.

    BatonError                      anything baton raises on purpose
    ├── ConfigError                 a config file or override is invalid (file, field, reason)
    ├── DecodeError                 a payload from the network was refused; `.reason` is the
    │   │                           counter label, and retrying the same bytes never helps
    │   ├── PayloadTooLarge         over the size limit, refused before parsing
    │   ├── MalformedPayload        not valid msgpack / JSON (truncated, garbage, extra data)
    │   ├── UnsupportedSchema       the `v` field names a schema version we do not speak
    │   ├── UnknownKind             the `kind` field names no message we know
    │   └── InvalidMessage          parsed, but a field is missing or wrong (`.field`)
    │       └── NonFiniteValue      a NaN or infinity where a real number is needed
    ├── HarnessError                starting or stopping a local nats-server failed
    │   ├── BinaryNotFound          the nats-server binary is not installed
    │   ├── PortInUse               a port we were told to use is taken
    │   └── ServerStartError        the server exited or never became ready
    └── TransportError              a broker or peer could not be reached; retry may help

Every error says whether a retry can help through `retryable`.
"""

from __future__ import annotations


class BatonError(Exception):
    """Root of every error baton raises on purpose."""

    retryable: bool = False


class ConfigError(BatonError):
    """A configuration file or environment override is invalid."""

    def __init__(self, reason: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = ": ".join(part for part in (file, field) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class DecodeError(BatonError):
    """A payload from the network was refused. `reason` is a stable counter label."""

    reason: str = "decode"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


class PayloadTooLarge(DecodeError):
    reason = "too_large"


class MalformedPayload(DecodeError):
    reason = "malformed"


class UnsupportedSchema(DecodeError):
    reason = "schema_version"


class UnknownKind(DecodeError):
    reason = "unknown_kind"


class InvalidMessage(DecodeError):
    reason = "invalid"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {detail}" if field else detail)


class NonFiniteValue(InvalidMessage):
    reason = "non_finite"


class HarnessError(BatonError):
    """Starting or stopping a local nats-server failed."""


class BinaryNotFound(HarnessError):
    pass


class PortInUse(HarnessError):
    pass


class ServerStartError(HarnessError):
    retryable = True


class TransportError(BatonError):
    """A broker or peer could not be reached."""

    retryable = True
