"""Errors of `shared.creds`, rooted under `shared.errors.BatonError`.

    BatonError
    └── CredsError              the credentials store refused an operation
        ├── StoreNotFound       no store at the path (run `baton creds init`)
        ├── UnknownIdentity     no gateway / device / orchestrator by that name
        └── IdentityExists      the name is taken (use --rotate to replace its secret)

None of them is retryable: the same call fails the same way until the store changes.
"""

from __future__ import annotations

from shared.errors import BatonError


class CredsError(BatonError):
    """The credentials store refused an operation."""


class StoreNotFound(CredsError):
    """No credentials store at the given path."""


class UnknownIdentity(CredsError):
    """No identity of that kind and name in the store."""


class IdentityExists(CredsError):
    """An identity of that kind and name is already in the store."""
