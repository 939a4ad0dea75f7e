"""Image edits: multipart and JSON, on both paths; outputs derived from the input; masks; limits."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image, ImageStat

from mockserver import MockConfig

from .conftest import AUTH, checked_app, data_url, decode_image, error_code, png_bytes

pytestmark = pytest.mark.anyio

EDIT_PATHS = ["/api/v1/images/edits", "/api/v1/images/edit"]


@pytest.mark.parametrize("path", EDIT_PATHS)
async def test_multipart_edit_keeps_input_size(client: httpx.AsyncClient, path: str) -> None:
    source = png_bytes(300, 200, (20, 120, 220))
    r = await client.post(
        path,
        data={"prompt": "make it pop", "model": "gpt-image-2"},
        files={"image": ("in.png", source, "image/png")},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    out = decode_image(r.json()["data"][0]["b64_json"])
    assert out.size == (300, 200)
    assert out.format == "PNG"


async def test_multipart_edit_with_size_and_n(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images/edits",
        data={"prompt": "p", "model": "gpt-image-2", "size": "1024x1536", "n": "2"},
        files=[
            ("image[]", ("a.png", png_bytes(), "image/png")),
            ("image[]", ("b.jpg", png_bytes(fmt="JPEG"), "image/jpeg")),
        ],
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    images = [decode_image(d["b64_json"]) for d in r.json()["data"]]
    assert [i.size for i in images] == [(1024, 1536), (1024, 1536)]


async def test_mask_changes_only_masked_region_more(client: httpx.AsyncClient) -> None:
    source = png_bytes(256, 256, (128, 128, 128))
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (0, 0, 128, 256))  # white = edit the left half
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    r = await client.post(
        "/api/v1/images/edits",
        data={"prompt": "p", "model": "gpt-image-2", "seed": "1"},
        files={"image": ("in.png", source, "image/png"), "mask": ("mask.png", buf.getvalue(), "image/png")},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    out = decode_image(r.json()["data"][0]["b64_json"]).convert("RGB")
    original = Image.open(io.BytesIO(source)).convert("RGB")

    def distance(box: tuple[int, int, int, int]) -> float:
        a = ImageStat.Stat(out.crop(box)).mean
        b = ImageStat.Stat(original.crop(box)).mean
        return sum(abs(x - y) for x, y in zip(a, b, strict=True))

    # compare strips away from the label in the middle
    assert distance((0, 200, 120, 256)) > distance((136, 200, 256, 256)) + 10


async def test_mask_on_model_without_inpainting(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images/edits",
        data={"prompt": "p", "model": "qwen-image-edit"},
        files={"image": ("in.png", png_bytes(), "image/png"), "mask": ("m.png", png_bytes(), "image/png")},
        headers=AUTH,
    )
    assert r.status_code == 400 and error_code(r.json()) == "image_input_not_supported"


async def test_json_edit_with_data_url(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images/edit",
        json={"prompt": "p", "imageDataUrl": data_url(png_bytes(64, 64)), "response_format": "url"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    url = r.json()["data"][0]["url"]
    got = await client.get(url)
    assert got.status_code == 200
    assert Image.open(io.BytesIO(got.content)).size == (64, 64)


async def test_same_edit_same_bytes(client: httpx.AsyncClient) -> None:
    body = {"prompt": "p", "imageDataUrl": data_url(png_bytes(64, 64)), "seed": 9}
    a = await client.post("/api/v1/images/edits", json=body, headers=AUTH)
    b = await client.post("/api/v1/images/edits", json=body, headers=AUTH)
    assert a.json()["data"] == b.json()["data"]


@pytest.mark.parametrize("path", EDIT_PATHS)
async def test_missing_image_input(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(path, data={"prompt": "p"}, files={"other": ("x.txt", b"hi", "text/plain")}, headers=AUTH)
    assert r.status_code == 400 and error_code(r.json()) == "missing_image_input"
    r = await client.post(path, json={"prompt": "p"}, headers=AUTH)
    assert r.status_code == 400 and error_code(r.json()) == "missing_image_input"


async def test_malformed_multipart(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images/edits",
        content=b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello',
        headers={**AUTH, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 400 and error_code(r.json()) == "invalid_multipart_body"
    r = await client.post(
        "/api/v1/images/edits", content=b"abc", headers={**AUTH, "content-type": "multipart/form-data"}
    )
    assert r.status_code == 400 and error_code(r.json()) == "invalid_multipart_body"


async def test_undecodable_upload(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images/edits", data={"prompt": "p"}, files={"image": ("x.png", b"garbage", "image/png")}, headers=AUTH
    )
    assert r.status_code == 400 and error_code(r.json()) == "invalid_parameter_value"


async def test_image_too_large_per_image() -> None:
    app = checked_app(MockConfig(max_image_bytes=10_000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        noisy = Image.frombytes("RGB", (200, 200), random.Random(0).randbytes(120_000))
        buf = io.BytesIO()
        noisy.save(buf, format="PNG")
        assert len(buf.getvalue()) > 10_000
        r = await c.post(
            "/api/v1/images/edits",
            data={"prompt": "p"},
            files={"image": ("x.png", buf.getvalue(), "image/png")},
            headers=AUTH,
        )
    assert r.status_code == 413 and error_code(r.json()) == "image_input_too_large"


async def test_body_limit_while_streaming() -> None:
    app = checked_app(MockConfig(max_body_bytes=50_000))
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 10_000
            yield b"x" * 10_000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        r = await c.post(
            "/api/v1/images/edits",
            content=stream(),
            headers={**AUTH, "content-type": "multipart/form-data; boundary=b"},
        )
    assert r.status_code == 413 and error_code(r.json()) == "image_input_too_large"
    body_read = sent
    assert body_read <= 70_000  # the limit plus a chunk or two, never the whole megabyte
