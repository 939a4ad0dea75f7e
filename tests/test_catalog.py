"""The three catalog endpoints, fed by the one catalog file, and the catalog's own invariants."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from mockserver.catalog import load_catalog

from .conftest import AUTH

pytestmark = pytest.mark.anyio


async def test_images_models_lists_the_catalog(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/images/models")
    assert r.status_code == 200
    body = r.json()
    catalog = load_catalog()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [m.id for m in catalog.models]
    assert body["meta"]["count"] == len(catalog.models) >= 12
    styles = {("resolutions" in m["supported_parameters"]) for m in body["data"]}
    assert styles == {True, False}  # both typed and legacy descriptors are served
    for item in body["data"]:
        assert item["endpoints"] == f"/api/v1/images/models/{item['id']}/endpoints"


async def test_catalog_works_anonymously_and_with_keys(client: httpx.AsyncClient) -> None:
    anon = await client.get("/api/v1/images/models")
    keyed = await client.get("/api/v1/images/models", headers=AUTH)
    bad = await client.get("/api/v1/images/models", headers={"x-api-key": "whatever"})
    assert anon.content == keyed.content == bad.content


@pytest.mark.parametrize("model_id", ["openai/gpt-image-2.5/flare/text-to-image", "bytedance/seedream-v5.0-pro/edit"])
async def test_endpoints_with_slashes_in_model_id(client: httpx.AsyncClient, model_id: str) -> None:
    listed = {m["id"]: m for m in (await client.get("/api/v1/images/models")).json()["data"]}
    r = await client.get(listed[model_id]["endpoints"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == model_id
    (endpoint,) = body["endpoints"]
    assert endpoint["provider_tag"] is None
    assert endpoint["pricing"][0]["cost_usd"] > 0


async def test_endpoints_percent_encoded_slashes(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/images/models/openai%2Fgpt-image-2.5%2Fflare%2Fedit/endpoints")
    assert r.status_code == 200
    assert r.json()["id"] == "openai/gpt-image-2.5/flare/edit"
    assert "input_reference_constraints" in r.json()["endpoints"][0]


async def test_legacy_catalog_detailed_and_basic(client: httpx.AsyncClient) -> None:
    detailed = (await client.get("/api/v1/image-models")).json()
    basic = (await client.get("/api/v1/image-models", params={"detailed": "false"})).json()
    assert len(detailed["data"]) == len(basic["data"])
    assert set(basic["data"][0]) == {"id", "object", "created", "owned_by"}
    first = detailed["data"][0]
    assert first["pricing"]["currency"] == "USD"
    assert all("*" in key for key in first["pricing"]["per_image"])


def test_prices_match_what_generation_charges() -> None:
    catalog = load_catalog()
    for model in catalog.models:
        w, h, tier = model.pixel_size(None)
        expected = model.price_by_resolution.get(model.default_size, model.price_usd)
        assert model.price(w, h, tier) == Decimal(str(expected))


def test_every_model_default_size_is_accepted() -> None:
    for model in load_catalog().models:
        w, h, _ = model.pixel_size(model.default_size)
        assert f"{w}x{h}" == model.default_size
        for size in model.sizes:
            assert model.pixel_size(size)[:2] == tuple(int(v) for v in size.split("x"))
