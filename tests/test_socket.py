"""Behaviour that is about HTTP itself, on a real uvicorn socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from mockserver import MockConfig, create_app
from mockserver.serving import ServerThread, serve

from .conftest import AUTH, checked_app, error_code, open_image

pytestmark = pytest.mark.socket


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serve(checked_app(MockConfig(max_body_bytes=200_000))) as running:
        yield running


def test_generation_and_url_download_over_tcp(server: ServerThread) -> None:
    with httpx.Client(base_url=server.base_url) as c:
        r = c.post("/v1/images/generations", json={"prompt": "x", "response_format": "url", "seed": 1}, headers=AUTH)
        assert r.status_code == 200
        url = r.json()["data"][0]["url"]
        assert url.startswith(server.base_url + "/_mock/files/")
        image = c.get(url)
    assert image.headers["content-type"] == "image/png"
    assert open_image(image.content).size == (1024, 1024)


def test_oversized_body_is_refused_before_it_is_read(server: ServerThread) -> None:
    """Content-Length over the limit: 413 at once, although the client never sends the body."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/images/edits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000000\r\n\r\n"
        )
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413")
    assert "image_input_too_large" in head


def test_chunked_upload_over_the_limit(server: ServerThread) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"z" * 16384

    with httpx.Client(base_url=server.base_url) as c:
        r = c.post(
            "/api/v1/images/edits",
            content=chunks(),
            headers={**AUTH, "content-type": "multipart/form-data; boundary=b"},
        )
    assert r.status_code == 413
    assert error_code(r.json()) == "image_input_too_large"


def test_unknown_path_and_method_over_tcp(server: ServerThread) -> None:
    with httpx.Client(base_url=server.base_url) as c:
        assert c.get("/nope").status_code == 404
        r = c.delete("/api/v1/images/models")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_independent_instances_do_not_share_state() -> None:
    app_a = create_app(MockConfig())
    with serve(app_a) as a, serve(create_app(MockConfig())) as b:
        app_a.engine.ledger.set_balance("sk-test-key", "0")
        with httpx.Client() as c:
            ra = c.post(a.base_url + "/v1/images/generations", json={"prompt": "x"}, headers=AUTH)
            rb = c.post(b.base_url + "/v1/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert (ra.status_code, rb.status_code) == (402, 200)
