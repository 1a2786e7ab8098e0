"""Errors → HTTP: every refusal is a 4xx (or 503) with a reason, never a bare 500.

    NotFound 404 · TooLarge 413 · BadRequest 400 · PreconditionFailed 412 · Conflict 409
    PlanError 422 · SagaError 409 · Unavailable / TransportError 503 · validation 422

The body is always `{"error": <type>, "reason": <text>}` (`ErrorOut`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.errors import (
    BadRequest,
    CloudError,
    Conflict,
    NotFound,
    PlanError,
    PreconditionFailed,
    SagaError,
    TooLarge,
    Unavailable,
)
from shared.errors import BatonError, TransportError

log = logging.getLogger(__name__)

MAX_REASONS = 4

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[BatonError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (TooLarge, 413, "too_large"),
    (BadRequest, 400, "bad_request"),
    (PreconditionFailed, 412, "precondition_failed"),
    (Conflict, 409, "conflict"),
    (PlanError, 422, "plan_error"),
    (SagaError, 409, "saga_error"),
    (Unavailable, 503, "unavailable"),
    (TransportError, 503, "hub_unreachable"),
    (CloudError, 400, "bad_request"),
)


def error_response(status: int, error: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason, **extra}, status_code=status)


async def _baton_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, error in _STATUS:
        if isinstance(exc, cls):
            return error_response(status, error, str(exc))
    log.error("API %s %s: unexpected %r", request.method, request.url.path, exc)
    return error_response(503, "unavailable", str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only type, location and message: the offending input is not echoed back (it may be
    # large, or a NaN that JSON cannot even carry).
    errors = [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg"))}
        for e in exc.errors()
    ]
    # A union field fails once per branch: name a few, so the real cause (e.g. "finite
    # number") is in the reason and not only the first branch's complaint.
    shown = [_where(e) for e in errors[:MAX_REASONS]] or ["invalid request"]
    more = f" (+{len(errors) - MAX_REASONS} more)" if len(errors) > MAX_REASONS else ""
    reason = "; ".join(shown) + more
    return error_response(422, "invalid_request", reason, detail=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Refusals Starlette makes itself (no route, a method a route lacks, a body it cannot
    parse) get the same `{error, reason}` body as ours."""
    assert isinstance(exc, StarletteHTTPException)
    error = _HTTP_ERRORS.get(exc.status_code, "bad_request")
    return error_response(exc.status_code, error, str(exc.detail))


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "bad_request"}


def _where(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def install(app: FastAPI) -> None:
    app.add_exception_handler(BatonError, _baton_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class RefusalCounter:
    """ASGI middleware: count every refused request (4xx, 503) by status — DESIGN's
    "every malformed input gets a typed, counted rejection", for the HTTP API too."""

    def __init__(self, app: ASGIApp, counter: Any) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if 400 <= status < 500 or status == 503:
                    self.counter.labels(str(status)).inc()
            await send(message)

        await self.app(scope, receive, counted_send)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 before reading them.

    Checks `Content-Length` up front and counts chunked bodies as they arrive.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(413, "too_large", f"request body over {self.max_bytes} bytes")
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise TooLarge(f"request body over {self.max_bytes} bytes")
            return message

        return counted
