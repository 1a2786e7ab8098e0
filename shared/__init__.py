"""The wire contract edge, cloud and firmware-sim share: messages, codec, subjects, clock.

`shared` never imports `edge` or `cloud`.
"""

from shared import codec, subjects
from shared.codec import MAX_MESSAGE_BYTES, decode, encode, encode_json
from shared.errors import BatonError, ConfigError, DecodeError
from shared.hlc import HybridLogicalClock

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BatonError",
    "ConfigError",
    "DecodeError",
    "HybridLogicalClock",
    "codec",
    "decode",
    "encode",
    "encode_json",
    "subjects",
]
