"""Shared fixtures: one mock app per test, an httpx client on its ASGI transport, image helpers."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image
from starlette.applications import Starlette

from mockserver import Engine, MockConfig, create_app

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=30)
settings.load_profile("default")

KEY = "sk-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def checked_engine(config: MockConfig | None = None) -> Engine:
    """An engine whose every answer is held to the spec: a non-conforming response fails the test."""
    return Engine(dataclasses.replace(config or MockConfig(), check_responses=True))


def checked_app(config: MockConfig | None = None) -> Starlette:
    return create_app(engine=checked_engine(config))


@pytest.fixture
def engine() -> Engine:
    return checked_engine()


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock.test") as c:
        yield c


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40), fmt: str = "PNG"
) -> bytes:
    """A real small image to upload."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format=fmt)
    return buf.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def decode_image(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def error_code(body: dict[str, Any]) -> str | None:
    """The code of any documented envelope (Image API, OpenAI-style, legacy)."""
    inner = body.get("error")
    if isinstance(inner, dict):
        return inner.get("code")
    return body.get("code")
