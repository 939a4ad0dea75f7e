"""The official `openai` SDK pointed at the mock: what application developers actually do."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from mockserver import MockConfig
from mockserver.serving import ServerThread, serve

from .conftest import KEY, checked_app, open_image, png_bytes

pytestmark = pytest.mark.socket


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serve(checked_app(MockConfig(api_keys=frozenset({KEY})))) as running:
        yield running


_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def sdk(server: ServerThread, prefix: str, key: str = KEY) -> openai.OpenAI:
    client = openai.OpenAI(api_key=key, base_url=server.base_url + prefix, max_retries=0)
    _OPEN.append(client)
    return client


def test_generate_b64_two_images_with_seed(server: ServerThread) -> None:
    client = sdk(server, "/v1")
    kwargs = {
        "model": "gpt-image-2",
        "prompt": "a lighthouse",
        "n": 2,
        "size": "1024x1536",
        "response_format": "b64_json",
        "extra_body": {"seed": 42},
    }
    first = client.images.generate(**kwargs)  # type: ignore[call-overload]
    again = client.images.generate(**kwargs)  # type: ignore[call-overload]
    assert first.data is not None and again.data is not None
    assert len(first.data) == 2
    images = [Image.open(io.BytesIO(base64.b64decode(d.b64_json or ""))) for d in first.data]
    assert [i.size for i in images] == [(1024, 1536)] * 2
    assert [d.b64_json for d in first.data] == [d.b64_json for d in again.data]
    assert first.data[0].b64_json != first.data[1].b64_json


def test_generate_url(server: ServerThread) -> None:
    result = sdk(server, "/v1").images.generate(model="hidream", prompt="x", response_format="url")
    assert result.data is not None and result.data[0].url
    with httpx.Client() as http:
        downloaded = http.get(result.data[0].url)
    assert downloaded.status_code == 200
    assert open_image(downloaded.content).size == (1024, 1024)


def test_edit_with_real_png_file(server: ServerThread, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(200, 120))
    with path.open("rb") as fh:
        result = sdk(server, "/api/v1").images.edit(model="gpt-image-2", image=fh, prompt="add a hat")
    assert result.data is not None
    out = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or "")))
    assert out.size == (200, 120)


def test_edit_with_several_images_and_mask(server: ServerThread) -> None:
    images = [("a.png", png_bytes(128, 128), "image/png"), ("b.png", png_bytes(128, 128, (0, 0, 255)), "image/png")]
    result = sdk(server, "/api/v1").images.edit(
        model="gpt-image-2",
        image=images,
        mask=("m.png", png_bytes(128, 128, (255, 255, 255)), "image/png"),
        prompt="merge",
        size="1024x1024",
    )
    assert result.data is not None
    assert open_image(base64.b64decode(result.data[0].b64_json or "")).size == (1024, 1024)


def test_errors_surface_as_typed_exceptions(server: ServerThread) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        sdk(server, "/v1", key="sk-wrong").images.generate(prompt="x")
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(server, "/v1").images.generate(model="no-such-model", prompt="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(server, "/v1").images.generate(model="hidream", prompt="x", size="333x333")
    assert bad.value.code == "invalid_parameter_value"
    assert bad.value.param == "size"
