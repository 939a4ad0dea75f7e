"""The outer layer: Starlette and ASGI. Everything else is plain functions (engine.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .engine import Engine, MockConfig
from .errors import MockError
from .messages import MockRequest, MockResponse

log = logging.getLogger("mockserver")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


class BodyTooLarge(Exception):
    """The request body passed the configured limit while streaming in."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes: never buffer more than the limit plus one chunk."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: MockConfig | None = None, *, engine: Engine | None = None, **overrides: Any) -> Starlette:
    """Build one mock instance: the ASGI app with its own engine and state on ``app.state``.

    ``overrides`` are MockConfig fields, for the common ``create_app(balance=...)`` case.
    """
    if engine is None:
        if overrides:
            base = config or MockConfig()
            config = MockConfig(**{**base.__dict__, **overrides})
        engine = Engine(config)
    limit = engine.config.max_body_bytes

    async def endpoint(request: Request) -> Response:
        scope = request.scope
        server = scope.get("server")
        host = request.headers.get("host") or (f"{server[0]}:{server[1]}" if server else "localhost")
        base_url = f"{scope.get('scheme', 'http')}://{host}"
        method = request.method
        path = scope["path"]
        try:
            body = await read_body(request, limit)
        except BodyTooLarge:
            result = engine.reject(
                method, path, MockError("image_input_too_large", f"Request body exceeds the {limit}-byte limit.", None)
            )
            return _to_starlette(result, close=True)
        except ClientDisconnect:
            return Response(status_code=400)
        mock_request = MockRequest(
            method=method,
            path=path,
            query=tuple(request.query_params.multi_items()),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
            base_url=base_url,
        )
        try:
            result = engine.handle(mock_request)
        except Exception:  # the server must survive anything: answer 500 in the documented envelope
            log.exception("unhandled error on %s %s", method, path)
            result = engine.reject(method, path, MockError("server_error", "Internal server error."))
        if result.delay > 0:
            await anyio.sleep(result.delay)
        return _to_starlette(result)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)], lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.engine = engine
    return app


def _to_starlette(result: MockResponse, *, close: bool = False) -> Response:
    headers = dict(result.headers)
    if close:
        headers["connection"] = "close"
    return Response(result.body, status_code=result.status, headers=headers, media_type=result.media_type)
