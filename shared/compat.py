"""asyncio names that arrived in 3.11, for the Python 3.10 of Ubuntu 22.04 gateways."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout

    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib
    from async_timeout import timeout
    from taskgroup import TaskGroup

__all__ = ["TaskGroup", "timeout", "tomllib"]
