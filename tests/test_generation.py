"""Generation on every route: real images of the asked format, size and count; determinism; billing."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest

from mockserver import Engine, MockConfig, create_app

from .conftest import AUTH, KEY, checked_app, checked_engine, data_url, decode_image, error_code, open_image, png_bytes

pytestmark = pytest.mark.anyio

GENERATION_ROUTES = ["/v1/images/generations", "/api/v1/images/generations"]


@pytest.mark.parametrize("path", GENERATION_ROUTES)
async def test_openai_route_returns_real_png_of_default_size(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(path, json={"prompt": "a red fox"}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["created"], int)
    assert body["paymentSource"] == "USD"
    (item,) = body["data"]
    assert set(item) == {"b64_json"}
    image = decode_image(item["b64_json"])
    assert image.format == "PNG"
    assert image.size == (1024, 1024)  # hidream's default
    assert body["cost"] == pytest.approx(0.0066)


async def test_n_distinct_images_with_exact_size(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/images/generations",
        json={"prompt": "p", "model": "gpt-image-2", "n": 3, "size": "1536x1024", "seed": 7},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 3
    images = [decode_image(d["b64_json"]) for d in data]
    assert all(i.size == (1536, 1024) for i in images)
    assert len({d["b64_json"] for d in data}) == 3
    assert r.json()["cost"] == pytest.approx(3 * 0.0983)


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
async def test_output_format(client: httpx.AsyncClient, fmt: str, pil: str) -> None:
    r = await client.post(
        "/api/v1/images",
        json={"model": "gpt-image-2", "prompt": "x", "output_format": fmt, "resolution": "1024x768"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    image = decode_image(r.json()["data"][0]["b64_json"])
    assert image.format == pil
    assert image.size == (1024, 768)


async def test_same_seed_same_bytes_across_instances() -> None:
    payload = {"model": "flux-dev", "prompt": "lighthouse", "seed": 1234, "size": "512x768"}
    outputs = []
    for _ in range(2):
        app = checked_app(MockConfig())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
            r = await c.post("/v1/images/generations", json=payload, headers=AUTH)
            outputs.append(r.json()["data"][0]["b64_json"])
    assert outputs[0] == outputs[1]
    assert decode_image(outputs[0]).size == (512, 768)


async def test_no_seed_gives_fresh_images(client: httpx.AsyncClient) -> None:
    payload = {"model": "flux-dev", "prompt": "lighthouse"}
    a = (await client.post("/v1/images/generations", json=payload, headers=AUTH)).json()["data"][0]["b64_json"]
    b = (await client.post("/v1/images/generations", json=payload, headers=AUTH)).json()["data"][0]["b64_json"]
    assert a != b


async def test_different_prompt_changes_image(client: httpx.AsyncClient) -> None:
    base = {"model": "flux-dev", "seed": 5}
    a = await client.post("/v1/images/generations", json={**base, "prompt": "a"}, headers=AUTH)
    b = await client.post("/v1/images/generations", json={**base, "prompt": "b"}, headers=AUTH)
    assert a.json()["data"][0]["b64_json"] != b.json()["data"][0]["b64_json"]


async def test_nimages_beats_n(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "n": 1, "nImages": 3}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 3


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"resolution": "2k", "aspect_ratio": "16:9"}, (2688, 1536)),
        ({"resolution": "1k"}, (1024, 1024)),
        ({"aspect_ratio": "9:16"}, (768, 1344)),
        ({"resolution": "auto"}, (1024, 1024)),
        ({}, (1024, 1024)),
    ],
)
async def test_resolution_tiers_and_aspect_ratios(
    client: httpx.AsyncClient, body: dict[str, Any], size: tuple[int, int]
) -> None:
    r = await client.post(
        "/api/v1/images",
        json={"model": "openai/gpt-image-2.5/flare/text-to-image", "prompt": "x", **body},
        headers={"x-api-key": KEY},
    )
    assert r.status_code == 200, r.text
    assert decode_image(r.json()["data"][0]["b64_json"]).size == size


async def test_tier_price(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images",
        json={"model": "openai/gpt-image-2.5/flare/text-to-image", "prompt": "x", "resolution": "4k"},
        headers=AUTH,
    )
    assert r.json()["cost"] == pytest.approx(0.612)


async def test_fixed_image_count_model(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/generate-image", json={"model": "midjourney", "prompt": "x"}, headers={"x-api-key": KEY}
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 4


async def test_legacy_generate_uses_width_height(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/generate-image",
        json={"model": "flux-dev", "prompt": "x", "width": 768, "height": 512, "nImages": 2},
        headers={"x-api-key": KEY},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [decode_image(d["b64_json"]).size for d in data] == [(768, 512), (768, 512)]


async def test_image_to_image_on_normalized_route(client: httpx.AsyncClient) -> None:
    source = png_bytes(320, 240, (10, 200, 30))
    r = await client.post(
        "/api/v1/images",
        json={
            "model": "flux-kontext",
            "prompt": "x",
            "input_references": [data_url(source), {"type": "image_url", "image_url": {"url": data_url(source)}}],
            "resolution": "1024x1024",
        },
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert decode_image(r.json()["data"][0]["b64_json"]).size == (1024, 1024)


# -- billing -----------------------------------------------------------------------------------


async def test_remaining_balance_drops_by_cost() -> None:
    app = checked_app(MockConfig(balance=Decimal("1")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        first = (
            await c.post("/v1/images/generations", json={"prompt": "x", "model": "recraft-v3"}, headers=AUTH)
        ).json()
        second = (
            await c.post("/v1/images/generations", json={"prompt": "x", "model": "recraft-v3", "n": 2}, headers=AUTH)
        ).json()
    assert first["remainingBalance"] == pytest.approx(1 - 0.04)
    assert second["cost"] == pytest.approx(0.08)
    assert second["remainingBalance"] == pytest.approx(first["remainingBalance"] - second["cost"])


async def test_insufficient_balance_is_402_with_documented_body() -> None:
    app = checked_app(MockConfig(balance=Decimal("0.05")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        r = await c.post("/v1/images/generations", json={"prompt": "x", "model": "recraft-v3", "n": 2}, headers=AUTH)
    assert r.status_code == 402
    body = r.json()
    assert body["error"] == "Insufficient balance"
    assert body["status"] == 402
    assert body["requiredBalance"] == pytest.approx(0.08)


async def test_balances_are_per_key() -> None:
    engine = checked_engine(MockConfig(balance=Decimal("10")))
    engine.ledger.set_balance("poor", "0")
    app = create_app(engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        poor = await c.post("/v1/images/generations", json={"prompt": "x"}, headers={"Authorization": "Bearer poor"})
        rich = await c.post("/v1/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert poor.status_code == 402
    assert rich.status_code == 200


async def test_concurrent_requests_never_lose_or_double_charge() -> None:
    # price 0.005 each; 0.1 USD pays for exactly 20 of the 40 concurrent requests
    engine = checked_engine(MockConfig(balance=Decimal("0.1")))
    app = create_app(engine=engine)
    payload = {"prompt": "x", "model": "pruna-ai/p-image/text-to-image", "size": "1024x1024"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        responses = await asyncio.gather(
            *(c.post("/v1/images/generations", json=payload, headers=AUTH) for _ in range(40))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 20
    assert statuses.count(402) == 20
    assert engine.ledger.balance(KEY) == Decimal("0")
    remaining = sorted(r.json()["remainingBalance"] for r in responses if r.status_code == 200)
    assert remaining == pytest.approx([round(0.005 * i, 6) for i in range(20)])


async def test_concurrent_threads_on_engine_are_atomic() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mockserver import MockRequest

    engine = checked_engine(MockConfig(balance=Decimal("0.25")))
    body = b'{"prompt":"x","model":"pruna-ai/p-image/text-to-image"}'
    request = MockRequest(
        "POST",
        "/v1/images/generations",
        headers={"authorization": "Bearer k", "content-type": "application/json"},
        body=body,
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: engine.handle(request).status, range(80)))
    assert results.count(200) == 50
    assert engine.ledger.balance("k") == Decimal("0")


# -- URLs ---------------------------------------------------------------------------------------


async def test_url_response_downloads_the_same_image(client: httpx.AsyncClient) -> None:
    payload = {"prompt": "x", "model": "gpt-image-2", "seed": 3, "n": 2, "output_format": "webp"}
    b64 = await client.post("/api/v1/images", json=payload, headers=AUTH)
    url = await client.post("/api/v1/images", json={**payload, "response_format": "url"}, headers=AUTH)
    assert url.status_code == 200, url.text
    urls = [d["url"] for d in url.json()["data"]]
    assert all(set(d) == {"url"} for d in url.json()["data"])
    assert all(u.startswith("http://mock.test/_mock/files/") for u in urls)
    for u, expected in zip(urls, b64.json()["data"], strict=True):
        got = await client.get(u)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/webp"
        assert got.content == base64.b64decode(expected["b64_json"])
        assert open_image(got.content).size == (1024, 1024)


async def test_url_expires_and_tampering_is_refused(engine: Engine, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers=AUTH)
    url = r.json()["data"][0]["url"]
    tampered = url.replace("signature=", "signature=0")
    assert (await client.get(tampered)).status_code == 403
    assert (await client.get(url.split("?")[0])).status_code == 403
    engine.clock.advance(3601)
    expired = await client.get(url)
    assert expired.status_code == 410
    assert error_code(expired.json()) == "url_expired"


async def test_url_is_stateless_across_processes_with_same_secret(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers=AUTH)
    path = r.json()["data"][0]["url"].removeprefix("http://mock.test")
    other = checked_app(MockConfig())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://m") as c:
        assert (await c.get(path)).status_code == 200
    stranger = checked_app(MockConfig(signing_secret="another"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stranger), base_url="http://m") as c:
        assert (await c.get(path)).status_code == 403


async def test_presign_failure_answers_b64() -> None:
    app = checked_app(MockConfig(presign_failure=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        r = await c.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers=AUTH)
    assert set(r.json()["data"][0]) == {"b64_json"}


async def test_url_ttl_is_configurable() -> None:
    engine = checked_engine(MockConfig(url_ttl=60))
    app = create_app(engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        r = await c.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers=AUTH)
        url = r.json()["data"][0]["url"]
        engine.clock.advance(59)
        assert (await c.get(url)).status_code == 200
        engine.clock.advance(2)
        assert (await c.get(url)).status_code == 410
