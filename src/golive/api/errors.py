"""API error shape and handlers: `{"error": {"type": "...", "messages": ["..."]}}`.

Every non-2xx answer of the API has this shape, including FastAPI's own request
validation errors (422, each message naming the field and the reason), unknown
routes (404), wrong methods (405), oversized bodies (413) and errors nobody
handled (500, type "internal": a full disk, a bug), which say nothing of the
internals and are logged once, with the traceback, on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from golive.store import StoreBusy

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    429: "too_many_requests",
    500: "internal",
}


class ApiError(Exception):
    """Raise from a route to answer with the API's error shape."""

    def __init__(
        self,
        status_code: int,
        *messages: str,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(messages))
        self.status_code = status_code
        self.type = type or ERROR_TYPES.get(status_code, "error")
        self.messages = list(messages) or [self.type.replace("_", " ")]
        self.headers = headers


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what} {ident!r} not found")


def error_response(
    status_code: int,
    messages: Sequence[str],
    *,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "type": type or ERROR_TYPES.get(status_code, "error"),
            "messages": list(messages),
        }
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    path = ""
    for part in parts:
        if part.isdigit():
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "body"


def validation_messages(errors: Sequence[Any]) -> list[str]:
    """Readable messages, one per problem, each naming the field: `name: String should ...`."""
    messages: list[str] = []
    for err in errors:
        loc = err.get("loc", ())
        kind = err.get("type", "")
        msg = str(err.get("msg", "is invalid"))
        if kind == "json_invalid":
            messages.append(f"body: invalid JSON ({err.get('ctx', {}).get('error', msg)})")
            continue
        if kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "missing":
            msg = "field required"
        messages.append(f"{_field_path(loc)}: {msg}")
    return messages or ["invalid request"]


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.messages, type=exc.type, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, validation_messages(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, [message], headers=exc.headers)


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ValidationError):  # a bug in building a response, not bad input
        log.error("response validation failed: %s", exc)
        return error_response(500, [INTERNAL_MESSAGE])
    # The store raises ValueError with a readable message for invalid values.
    return error_response(422, [str(exc)])


async def _store_busy(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreBusy)
    return error_response(503, [str(exc)], headers={"Retry-After": str(exc.retry_after)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(StoreBusy, _store_busy)
    app.add_middleware(InternalErrorMiddleware)


INTERNAL_MESSAGE = "internal error; the server logged the details"


class InternalErrorMiddleware:
    """Answer an exception no handler took with a JSON 500, and stop it there.

    Starlette's own last resort answers plain text and re-raises, so the server logs
    the same failure again; this logs it once (method and path, never the body or
    headers, which may hold tokens) and keeps the API's error shape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("API request failed method=%s path=%s", scope.get("method"),
                          scope.get("path"))
            if started:
                raise  # half a response went out: only dropping the connection is honest
            await error_response(500, [INTERNAL_MESSAGE])(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 to request bodies over `max_bytes` before any route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
        if not too_big:
            # Read the body up front (it is small by definition) and replay it.
            chunks: list[bytes] = []
            size = 0
            more = True
            disconnect: Message | None = None
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnect = message
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    too_big = True
                    break
                chunks.append(chunk)
                more = message.get("more_body", False)
            if not too_big:
                body = b"".join(chunks)
                sent = False

                async def replay() -> Message:
                    nonlocal sent
                    if disconnect is not None and sent:
                        return disconnect
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send)
                return
        response = error_response(
            413, [f"request body is larger than {self.max_bytes // 1024} KiB"]
        )
        await response(scope, receive, send)
