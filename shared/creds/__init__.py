"""Identities and permissions for a baton fleet: `baton creds` and the configs it renders.

    store = CredStore.init("baton-creds")        # + an orchestrator NKEY
    store.add_gateway("gw1")                      # NKEY for the leaf node link + edge password
    store.add_device("pump-7", gateway="gw1")     # MQTT/NATS password, bcrypt hash in the index
    hub_authorization(store)                      # -> every hub node includes it
    leaf_credentials(store, "gw1")                # -> SECRET; the gw1 leaf includes it

Who may do what is in `shared.creds.permissions`; the edge daemon connects with
`inbox_prefix=gateway_inbox_prefix(gw)` so the hub's replies reach its leaf. Errors are
the `CredsError` branch of `shared.errors.BatonError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_getattr

if TYPE_CHECKING:
    from shared.creds.errors import CredsError, IdentityExists, StoreNotFound, UnknownIdentity
    from shared.creds.files import write_atomic
    from shared.creds.keys import UserKey, new_user_key, user_key_from_seed
    from shared.creds.permissions import (
        MIN_NATS_SERVER,
        Permissions,
        downlink_consumer,
        gateway_inbox_prefix,
    )
    from shared.creds.render import EDGE_USER, hub_authorization, leaf_credentials
    from shared.creds.store import CredStore, Device, Gateway

# Loaded on first use (PEP 562): the edge daemon reads only `permissions` (its inbox
# prefix), and nkeys (PyNaCl) and bcrypt, which keys and the store need, cost ~2 MB of
# a rules-only gateway's 50 MB.
_EXPORTS = {
    "CredsError": "shared.creds.errors",
    "IdentityExists": "shared.creds.errors",
    "StoreNotFound": "shared.creds.errors",
    "UnknownIdentity": "shared.creds.errors",
    "write_atomic": "shared.creds.files",
    "UserKey": "shared.creds.keys",
    "new_user_key": "shared.creds.keys",
    "user_key_from_seed": "shared.creds.keys",
    "MIN_NATS_SERVER": "shared.creds.permissions",
    "Permissions": "shared.creds.permissions",
    "downlink_consumer": "shared.creds.permissions",
    "gateway_inbox_prefix": "shared.creds.permissions",
    "EDGE_USER": "shared.creds.render",
    "hub_authorization": "shared.creds.render",
    "leaf_credentials": "shared.creds.render",
    "CredStore": "shared.creds.store",
    "Device": "shared.creds.store",
    "Gateway": "shared.creds.store",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "EDGE_USER",
    "MIN_NATS_SERVER",
    "CredStore",
    "CredsError",
    "Device",
    "Gateway",
    "IdentityExists",
    "Permissions",
    "StoreNotFound",
    "UnknownIdentity",
    "UserKey",
    "downlink_consumer",
    "gateway_inbox_prefix",
    "hub_authorization",
    "leaf_credentials",
    "new_user_key",
    "user_key_from_seed",
    "write_atomic",
]
