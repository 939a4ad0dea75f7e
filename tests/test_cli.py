"""`nanogpt-mock` / `python -m mockserver` as a user starts them: flags, environment, a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from mockserver.cli import build_parser

pytestmark = pytest.mark.socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", str(port), "--log-level", "warning", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/api/v1/images/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "the mock did not start"
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def test_help_explains_every_option() -> None:
    text = build_parser().format_help()
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--balance",
        "--catalog",
        "--url-ttl",
        "--signing-secret",
        "--presign-failure",
        "--fault-profile",
        "--admin-token",
        "--log-level",
    ):
        assert flag in text
    assert "NANOGPT_MOCK_BALANCE" in text


def test_module_serves_with_flags() -> None:
    with running(["--api-key", "sk-only", "--url-ttl", "5"]) as base, httpx.Client(base_url=base) as client:
        assert (
            client.post("/v1/images/generations", json={"prompt": "x"}, headers={"x-api-key": "sk-no"}).status_code
            == 401
        )
        r = client.post(
            "/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers={"x-api-key": "sk-only"}
        )
        assert r.status_code == 200
        assert client.get(r.json()["data"][0]["url"]).status_code == 200
        client.post("/_mock/clock", json={"advance": 6})
        assert client.get(r.json()["data"][0]["url"]).status_code == 410


def test_environment_variables_configure_it() -> None:
    env = {"NANOGPT_MOCK_BALANCE": "0", "NANOGPT_MOCK_ADMIN_TOKEN": "adm"}
    with running([], env) as base, httpx.Client(base_url=base) as client:
        assert (
            client.post("/v1/images/generations", json={"prompt": "x"}, headers={"x-api-key": "k"}).status_code == 402
        )
        assert client.get("/_mock/journal").status_code == 401
        assert client.get("/_mock/journal", headers={"x-mock-admin-token": "adm"}).status_code == 200
