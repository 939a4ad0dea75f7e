"""The HTTP server's limits on a real uvicorn socket: slow and idle clients dropped, header size bounded,
a client gone during the simulated latency pays nothing, and no key in the access log."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from mockserver import MockConfig
from mockserver.serving import ServerThread, serve

from .conftest import AUTH, KEY, checked_app

pytestmark = pytest.mark.socket

LIMITS = MockConfig(header_timeout=0.5, body_timeout=0.5, keep_alive_timeout=1, max_header_bytes=8192)
BOUND = 10.0  # seconds: any socket wait here is bounded; the limits above are far shorter


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serve(checked_app(LIMITS), log_level="info") as running:
        yield running


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=BOUND)
    sock.settimeout(BOUND)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout here fails the test)."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_a_connection_that_sends_nothing_is_closed(server: ServerThread) -> None:
    with connect(server) as sock:
        assert read_all(sock) == b""


def test_headers_sent_too_slowly_are_dropped(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/images/models HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert read_all(sock) == b""


def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":'
        )
        answer = read_all(sock).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408")
    assert "request_timeout" in answer and "connection: close" in answer.lower()


def test_an_idle_keep_alive_connection_is_closed(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/images/models HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_all(sock).decode("latin-1")  # the answer, then the close after the keep-alive timeout
    assert answer.startswith("HTTP/1.1 200")


@pytest.mark.parametrize("finished", [True, False])
def test_oversized_headers_get_431_and_a_close(server: ServerThread, finished: bool) -> None:
    with connect(server) as sock:
        head = b"GET /api/v1/images/models HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20_000
        sock.sendall(head + (b"\r\n\r\n" if finished else b""))
        answer = read_all(sock).decode("latin-1")
    assert answer.startswith("HTTP/1.1 431")
    body = json.loads(answer.split("\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_header_fields_too_large"


def test_headers_under_the_limit_still_work(server: ServerThread) -> None:
    with httpx.Client(base_url=server.base_url) as c:
        r = c.get("/api/v1/images/models", headers={"x-padding": "a" * 4000})
    assert r.status_code == 200


def balance(server: ServerThread, key: str) -> float:
    with httpx.Client(base_url=server.base_url) as c:
        return float(c.get("/_mock/balances", headers={"x-mock-key": key}).json()["balance"])


def test_a_client_gone_during_the_latency_is_not_charged(server: ServerThread) -> None:
    key = "sk-leaves-early"
    body = b'{"prompt":"x","model":"hidream","seed":5}'
    request = (
        b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
        b"Prefer: latency=3000\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with connect(server) as sock:
        sock.sendall(request)
        time.sleep(0.3)  # the mock has charged and is waiting out the latency
    deadline = time.monotonic() + BOUND
    while balance(server, key) != 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert balance(server, key) == 1000
    # the same request, waited for, is charged
    with connect(server) as sock:
        sock.sendall(request.replace(b"latency=3000", b"latency=10"))
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 200")
    assert balance(server, key) < 1000


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_access_log_of_a_run_holds_no_key(server: ServerThread) -> None:
    secret = "sk-very-secret-0123"
    capture = Lines()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(capture)
    try:
        with httpx.Client(base_url=server.base_url) as c:
            assert c.put(f"/_mock/balances/{secret}", json={"balance": 3}).status_code == 200
            assert c.get(f"/_mock/balances/{secret}").json()["balance"] == 3
            assert c.put("/_mock/balances", json={"balance": 4}, headers={"x-mock-key": secret}).status_code == 200
            headers = {"Authorization": f"Bearer {secret}"}
            assert c.post("/v1/images/generations", json={"prompt": "x"}, headers=headers).status_code == 200
            assert c.get("/_mock/journal", params={"key": secret}).json()["count"] == 1
            assert c.get("/api/v1/images/models", headers=AUTH).status_code == 200
    finally:
        access.removeHandler(capture)
    assert len(capture.lines) >= 6, capture.lines
    assert not [line for line in capture.lines if secret in line], capture.lines
    assert any("/_mock/balances/<redacted>" in line for line in capture.lines)
    assert any("key=<redacted>" in line for line in capture.lines)
    assert KEY not in "\n".join(capture.lines)
