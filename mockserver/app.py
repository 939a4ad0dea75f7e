"""The outer layer: ASGI and Starlette. Everything else is plain functions (engine.py).

HTTP requests go straight from ASGI messages to ``Engine.handle``: the engine routes by the spec, so
Starlette's router, middleware stack and per-request ``Request``/``Response`` objects would only add
cost (they were most of the time per request in ``bench/run.py``). Starlette keeps what it is good at
here: the lifespan protocol and ``app.state``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from .admin import ADMIN_PREFIX
from .config import MockConfig
from .engine import Engine, NonConformingResponse
from .errors import MockError
from .messages import MockRequest, MockResponse
from .signing import FILES_PREFIX

log = logging.getLogger("mockserver")

LIGHT_SECONDS = 0.0005  # an answer this quick is cheaper on the loop than a thread hop
LIGHT_BODY_BYTES = 4096  # a larger body is parsed (and maybe decoded) in a worker thread, always
LEARNED_LIGHT = 4096  # how many light requests are remembered
_KEY_IN_PATH = re.compile(r"(/_mock/balances/)[^/?\s]+")
_KEY_IN_QUERY = re.compile(r"(?<=[?&])key=[^&\s]*")


def redact(target: str) -> str:
    """A request target as logs may show it: a key in an admin path or a ``key=`` query is replaced."""
    if "/_mock/" not in target:
        return target
    return _KEY_IN_QUERY.sub("key=<redacted>", _KEY_IN_PATH.sub(r"\1<redacted>", target))


# CORS as browser apps see the live API (third-party reports: `Access-Control-Allow-Origin: *`); on by
# default, `--no-cors` / MockConfig(cors=False) turns it off.
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "retry-after, x-request-id, x-payment-response, x-poll-after, "
    "x-nanogpt-inline-moderation-model, x-nanogpt-inline-moderation-flagged, x-nanogpt-inline-moderation-cost-usd",
}
CORS_METHODS = "GET, POST, OPTIONS"


def preflight(headers: Mapping[str, str]) -> MockResponse:
    """The answer to a browser's CORS preflight: any origin, the asked headers, the API's methods."""
    allowed = {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": CORS_METHODS,
        "access-control-allow-headers": headers.get("access-control-request-headers") or "*",
        "access-control-max-age": "86400",
        "vary": "origin, access-control-request-headers",
    }
    return MockResponse(204, b"", "text/plain", allowed)


class BodyTooLarge(Exception):
    """The request body passed the configured limit while streaming in."""


class ClientGone(Exception):
    """The client disconnected before the body was complete: there is nobody to answer."""


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """Read at most ``limit`` bytes: never buffer more than the limit plus one chunk. (A client that
    sends its body too slowly is answered 408 and disconnected by the HTTP protocol, ``serving.py``:
    a timer per request there costs far less than a cancel scope here.)"""
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


class Offload:
    """Runs ``Engine.handle`` where it cannot stall other clients.

    Catalogs, admin calls and other body-less reads stay on the event loop (they are cheap). Anything
    that may parse a large body, decode an input or render an image runs in a worker thread, at most
    ``threads`` at once (Pillow and zlib release the GIL), until it has shown itself cheap: a small
    request whose answer took less than ``LIGHT_SECONDS`` (a cached image, a card spliced from cached
    pieces, a refusal) is remembered, and its repeats stay on the loop, where a thread hop would cost
    more than the work. A remembered request that turns out slow on the loop is forgotten again, so
    the loop is never held longer than one such answer.
    """

    def __init__(self, engine: Engine, threads: int) -> None:
        self._engine = engine
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._light: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._lock = threading.Lock()

    async def handle(self, request: MockRequest) -> MockResponse:
        path, small = request.path, len(request.body) <= LIGHT_BODY_BYTES
        reads = request.method in ("GET", "HEAD") or path.startswith(ADMIN_PREFIX)
        if small and reads and not path.startswith(FILES_PREFIX):  # catalogs, admin: cheap, on the loop
            return self._engine.handle(request)
        key = _light_key(request)
        if key is not None and key in self._light:
            started = time.perf_counter()
            response = self._engine.handle(request)
            if time.perf_counter() - started > LIGHT_SECONDS:
                self._remember(key, light=False)
            return response
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(self._in_worker, request, key, limiter=self._limiter)

    def _in_worker(self, request: MockRequest, key: tuple[Any, ...] | None) -> MockResponse:
        started = time.perf_counter()
        response = self._engine.handle(request)
        if key is not None and time.perf_counter() - started <= LIGHT_SECONDS:
            self._remember(key, light=True)
        return response

    def _remember(self, key: tuple[Any, ...], *, light: bool) -> None:
        with self._lock:
            if not light:
                self._light.pop(key, None)
                return
            self._light[key] = None
            if len(self._light) > LEARNED_LIGHT:
                self._light.popitem(last=False)


def _light_key(request: MockRequest) -> tuple[Any, ...] | None:
    """What decides how much work a request is (never the key itself: only whether one is sent)."""
    if len(request.body) > LIGHT_BODY_BYTES:
        return None
    h = request.headers
    credentials = "authorization" in h or "x-api-key" in h
    return (
        request.method,
        request.path,
        request.query,
        h.get("content-type"),
        h.get("prefer"),
        h.get("x-x402"),
        credentials,
        request.body,
    )


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
        self._offload = Offload(engine, engine.config.worker_threads)
        self._cors = engine.config.cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # lifespan
            return
        engine = self.engine
        method: str = scope["method"]
        path: str = scope["path"]
        headers = _headers(scope)
        if self._cors and method == "OPTIONS" and "access-control-request-method" in headers:
            await _send(send, preflight(headers))
            return
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
            result = await self._offload.handle(request)
        except NonConformingResponse:
            raise  # the tests' guard: a spec violation must fail loudly, not become a 500
        except Exception:  # the server must survive anything: answer 500 in the documented envelope
            log.exception("unhandled error on %s %s", method, redact(path))
            result = engine.reject(method, path, MockError("server_error", "Internal server error."))
        if self._cors:
            result.headers.update(CORS_HEADERS)
        await deliver(send, result, receive)


async def deliver(send: Send, result: MockResponse, receive: Receive | None = None) -> None:
    """Wait out the simulated latency, send, and only then keep the money: a charge is refunded when
    the answer does not leave (a client gone during the latency, a failed send, a cancellation).

    While it waits, it listens for the client (``receive``): one that disconnects during the latency
    pays nothing, and nothing is sent to it.
    """
    charge = result.charge
    try:
        if result.delay_ms > 0 and not await _wait_out(result.delay_ms / 1000, receive):
            if charge is not None:
                charge.refund()
            return
        await _send(send, result)
    except BaseException:
        if charge is not None:
            charge.refund()
        raise
    if charge is not None:
        charge.settle()


async def _wait_out(seconds: float, receive: Receive | None) -> bool:
    """Sleep ``seconds``; ``False`` as soon as the client disconnects meanwhile."""
    if receive is None:
        await anyio.sleep(seconds)
        return True
    with anyio.move_on_after(seconds):
        while True:  # the body was read: the next message is the disconnect, if any comes
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            await anyio.sleep(0)  # a server that answers with empty request messages must not spin
    return True


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
