"""Run the mock on a real uvicorn socket in a background thread (tests, the pytest plugin, contracts),
and the HTTP server's limits every way of serving it shares (``cli.py`` too)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import redact
from .config import MockConfig
from .errors import MockError

ACCESS_LOGGER = "uvicorn.access"


class KeyRedactingFilter(logging.Filter):
    """Keeps API keys out of uvicorn's access log (``/_mock/balances/<key>``, ``?key=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "/_mock/" in args[2]:
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install_log_redaction() -> None:
    """Add the filter to uvicorn's access logger once (logging configuration keeps logger filters)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, KeyRedactingFilter) for f in logger.filters):
        logger.addFilter(KeyRedactingFilter())


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with two limits it lacks: the request line and headers must arrive
    within ``header_timeout`` seconds (a fresh connection that sends nothing included), and be at most
    ``max_header_bytes`` long (431 and close beyond). Idle keep-alive connections use uvicorn's own timer."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    too_large: bytes = b""  # the whole 431 answer, rendered once
    too_slow: bytes = b""  # the whole 408 answer, rendered once

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._start_head()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.logger.info("closing a connection that did not send its headers within %ss", self.header_timeout)
            self.transport.close()

    def _refuse_head(self) -> None:
        self._end_head()
        self.logger.info("refusing request headers over %s bytes", self.max_header_bytes)
        self.transport.write(self.too_large)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            self._refuse_head()
            return
        self._end_head()
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._end_body()
        super().on_message_complete()

    def _end_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        """The body did not arrive in time: 408 (when no answer has started) and close; the app's
        ``receive`` then reports a disconnect, so it answers nothing more and keeps no money."""
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing():
            return
        self.logger.info("closing a connection that did not send its body within %ss", self.body_timeout)
        if cycle is not None and not cycle.response_started:
            self.transport.write(self.too_slow)
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        self._end_body()
        super().connection_lost(exc)


def _raw_answer(app: Any, status: str, code: str, message: str) -> bytes:
    """A routing error in the documented envelope (admin document, ``x-routing-errors``), as raw HTTP."""
    engine = getattr(app, "engine", None)
    if engine is not None:
        body = bytes(engine.error_response(None, MockError(code, message)).body)
    else:
        body = orjson.dumps({"error": {"message": message, "code": code}})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def server_limits(app: Any, config: MockConfig | None = None) -> dict[str, Any]:
    """uvicorn.Config keyword arguments carrying the mock's HTTP limits (from ``config`` or ``app.engine``)."""
    if config is None:
        engine = getattr(app, "engine", None)
        config = engine.config if engine is not None else MockConfig()
    protocol = type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": config.header_timeout,
            "body_timeout": config.body_timeout,
            "max_header_bytes": config.max_header_bytes,
            "too_large": _raw_answer(
                app,
                "431 Request Header Fields Too Large",
                "request_header_fields_too_large",
                f"The request headers exceed {config.max_header_bytes} bytes.",
            ),
            "too_slow": _raw_answer(
                app,
                "408 Request Timeout",
                "request_timeout",
                f"The request body was not received within {config.body_timeout:g} seconds.",
            ),
        },
    )
    return {
        "http": protocol,
        "timeout_keep_alive": config.keep_alive_timeout,
        "limit_concurrency": config.max_connections,
        "h11_max_incomplete_event_size": config.max_header_bytes,
    }


class ServerThread:
    """A uvicorn server on a free loopback port, started and stopped explicitly."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="on", **server_limits(app)
        )
        install_log_redaction()
        self.server = uvicorn.Server(self.config)
        self._thread = threading.Thread(target=self.server.run, name="nanogpt-mock", daemon=True)
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the mock server did not start on {self.host}:{self.config.port}")
            time.sleep(0.01)
        sockets = [s for server in self.server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)


@contextmanager
def serve(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[ServerThread]:
    """``with serve(create_app()) as server: httpx.get(server.base_url + ...)``."""
    thread = ServerThread(app, host, port, log_level).start()
    try:
        yield thread
    finally:
        thread.stop()
