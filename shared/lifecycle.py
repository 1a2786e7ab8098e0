"""`Service`: the async-context-manager shape every long-lived baton object shares.

`async with X(...) as x:` starts it and closes it in all cases; a start that fails
half-way closes what it opened (so `aclose()` must be safe on a partly started object,
and safe to call twice — STYLE.md, "Async lifecycle").
"""

from __future__ import annotations

from types import TracebackType

from typing_extensions import Self


class Service:
    """Mixin: subclasses implement `aclose()`, and `start()` unless a factory hands
    them out already running."""

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        raise TypeError(f"{type(self).__name__} must define aclose()")

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
