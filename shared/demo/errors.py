"""Errors of `baton demo`, rooted in `shared.errors.BatonError`.

    DemoError           the demo could not run; the CLI prints one line and exits 2
    ├── MissingPiece    something the demo needs is not installed (an extra, a binary)
    └── ComponentFailed a component did not start, or exited while the demo ran

Neither is retryable as is: the message says what to install or where the log is.
"""

from __future__ import annotations

from shared.errors import BatonError


class DemoError(BatonError):
    """`baton demo` cannot go on; the message is the one line the user sees."""


class MissingPiece(DemoError):
    """A package, extra or binary the demo needs is not installed."""


class ComponentFailed(DemoError):
    """A component did not become ready, or exited early; the message names its log."""
