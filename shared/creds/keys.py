"""Secrets: NKEY user key pairs and random passwords with their bcrypt hashes.

NKEYs (Ed25519, https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/nkey_auth)
identify the processes that can hold a seed file and speak NATS: gateways (their leaf
node link to the hub) and the orchestrator. The server keeps only public keys.

MQTT has no challenge-response, so devices log in with a username and password
(MQTT 3.1.1 §3.1.3.4-5); the server config keeps only the bcrypt hash of it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import bcrypt
import nkeys

# 32 url-safe characters: 192 bits, and safe inside a nats:// URL without escaping.
PASSWORD_BYTES = 24
# The server runs bcrypt on every CONNECT, so a reconnect storm of a few hundred devices
# on a Raspberry Pi costs cost-proportional CPU. The cost factor only slows guessing of
# weak passwords; ours are 192-bit random, so 10 (nats-server's minimum recommendation
# is 10, `nats server passwd` uses 11) buys nothing by going higher.
BCRYPT_COST = 10
_ED25519_SEED_BYTES = 32


@dataclass(frozen=True, slots=True)
class UserKey:
    """An NKEY user: `seed` (S..., secret) signs the server's nonce; `public` (U...) is shared."""

    seed: str
    public: str

    def __repr__(self) -> str:  # never print a seed by accident
        return f"UserKey(public={self.public!r})"


def new_user_key() -> UserKey:
    raw = os.urandom(_ED25519_SEED_BYTES)
    seed = nkeys.encode_seed(raw, nkeys.PREFIX_BYTE_USER)
    return user_key_from_seed(seed.decode("ascii"))


def user_key_from_seed(seed: str) -> UserKey:
    """The key pair of a user seed; ValueError when it is not one."""
    text = seed.strip()
    if not text.startswith("SU"):
        raise ValueError("not an NKEY user seed (expected 'SU...')")
    try:
        pair = nkeys.from_seed(bytearray(text.encode("ascii")))
    except nkeys.NkeysError as exc:
        raise ValueError(f"invalid NKEY seed: {exc}") from exc
    return UserKey(seed=text, public=pair.public_key.decode("ascii"))


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, cost: int = BCRYPT_COST) -> str:
    """bcrypt hash in the `$2b$` form nats-server checks (it accepts 2a/2b/2y)."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(cost)).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
