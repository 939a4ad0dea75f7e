"""The outer layer: ASGI and Starlette. Everything else is plain functions (engine.py).

HTTP requests go straight from ASGI messages to ``Engine.handle``: the engine routes by the spec, so
Starlette's router, middleware stack and per-request ``Request``/``Response`` objects would only add
cost (they were most of the time per request in ``bench/run.py``). Starlette keeps what it is good at
here: the lifespan protocol and ``app.state``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from .config import MockConfig
from .engine import Engine, NonConformingResponse
from .errors import MockError
from .messages import MockRequest, MockResponse

log = logging.getLogger("mockserver")


class BodyTooLarge(Exception):
    """The request body passed the configured limit while streaming in."""


class ClientGone(Exception):
    """The client disconnected before the body was complete: there is nobody to answer."""


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """Read at most ``limit`` bytes: never buffer more than the limit plus one chunk."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value  # RFC 9110 field combination
    return out


def _query(raw: bytes) -> tuple[tuple[str, str], ...]:
    """Query pairs as Starlette's QueryParams reads them (most requests carry none)."""
    return tuple(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else ()


class MockApp(Starlette):
    """One mock instance as an ASGI app; its engine (and so all its state) is ``app.state.engine``."""

    def __init__(self, engine: Engine) -> None:
        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield

        super().__init__(lifespan=lifespan)
        self.engine = engine
        self.state.engine = engine
        self._limit = engine.config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # lifespan
            return
        engine = self.engine
        method: str = scope["method"]
        path: str = scope["path"]
        headers = _headers(scope)
        try:
            body = await read_body(receive, headers, self._limit)
        except ClientGone:
            return
        except BodyTooLarge:
            error = MockError("image_input_too_large", f"Request body exceeds the {self._limit}-byte limit.")
            await _send(send, engine.reject(method, path, error), close=True)
            return
        server = scope.get("server")
        host = headers.get("host") or (f"{server[0]}:{server[1]}" if server else "localhost")
        request = MockRequest(
            method=method,
            path=path,
            query=_query(scope.get("query_string", b"")),
            headers=headers,
            body=body,
            base_url=f"{scope.get('scheme', 'http')}://{host}",
        )
        try:
            result = engine.handle(request)
        except NonConformingResponse:
            raise  # the tests' guard: a spec violation must fail loudly, not become a 500
        except Exception:  # the server must survive anything: answer 500 in the documented envelope
            log.exception("unhandled error on %s %s", method, path)
            result = engine.reject(method, path, MockError("server_error", "Internal server error."))
        await deliver(send, result)


async def deliver(send: Send, result: MockResponse) -> None:
    """Wait out the simulated latency, send, and only then keep the money: a charge is refunded when
    the answer does not leave (a client gone during the latency, a failed send, a cancellation)."""
    charge = result.charge
    try:
        if result.delay_ms > 0:
            await anyio.sleep(result.delay_ms / 1000)
        await _send(send, result)
    except BaseException:
        if charge is not None:
            charge.refund()
        raise
    if charge is not None:
        charge.settle()


async def _send(send: Send, result: MockResponse, *, close: bool = False) -> None:
    raw = [
        (b"content-type", result.media_type.encode("latin-1")),
        (b"content-length", str(len(result.body)).encode("latin-1")),
    ]
    if result.headers:
        raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in result.headers.items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": result.status, "headers": raw})
    await send({"type": "http.response.body", "body": result.body})


def create_app(config: MockConfig | None = None, *, engine: Engine | None = None, **overrides: Any) -> MockApp:
    """Build one mock instance: the ASGI app with its own engine and state on ``app.state.engine``.

    ``overrides`` are MockConfig fields, for the common ``create_app(balance=...)`` case.
    """
    if engine is None:
        if overrides:
            config = dataclasses.replace(config or MockConfig(), **overrides)
        engine = Engine(config)
    return MockApp(engine)
