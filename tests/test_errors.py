"""Every documented refusal: the code, the status and the envelope the spec declares."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from mockserver import MockConfig

from .conftest import AUTH, checked_app, data_url, error_code, png_bytes

pytestmark = pytest.mark.anyio


def image_api_error(r: httpx.Response, code: str, status: int = 400, parameter: str | None = None) -> dict[str, Any]:
    """The Image API envelope: error.{message,type,code,parameter?} plus a top-level code."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "param" not in body["error"]
    if parameter is not None:
        assert body["error"]["parameter"] == parameter
    return cast(dict[str, Any], body)


def openai_error(r: httpx.Response, code: str, status: int = 400) -> dict[str, Any]:
    """The OpenAI-style envelope: error.{message,type,code,param?}, no top-level code."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code
    assert "code" not in body
    assert "parameter" not in body["error"]
    return cast(dict[str, Any], body)


async def test_images_requires_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/images", content=b"model=x", headers={**AUTH, "content-type": "text/plain"})
    image_api_error(r, "invalid_content_type")


async def test_images_missing_model(client: httpx.AsyncClient) -> None:
    body = image_api_error(
        await client.post("/api/v1/images", json={"prompt": "x"}, headers=AUTH), "missing_model", parameter="model"
    )
    assert body["error"]["message"] == "model is required for /api/v1/images."
    assert body["error"]["type"] == "invalid_request_error"


async def test_images_stream_rejected(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "stream": True}, headers=AUTH)
    image_api_error(r, "unsupported_stream", parameter="stream")


async def test_images_stream_false_is_fine(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "stream": False}, headers=AUTH)
    assert r.status_code == 200


async def test_images_provider_options(client: httpx.AsyncClient) -> None:
    ok = await client.post("/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "provider": {}}, headers=AUTH)
    assert ok.status_code == 200
    r = await client.post(
        "/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "provider": {"order": ["openai"]}}, headers=AUTH
    )
    image_api_error(r, "unsupported_provider_options", parameter="provider")


@pytest.mark.parametrize("alias", ["imageDataUrl", "imageDataUrls", "image_url", "images"])
async def test_images_conflicting_inputs(client: httpx.AsyncClient, alias: str) -> None:
    ref = data_url(png_bytes())
    value: Any = [ref] if alias in ("imageDataUrls", "images") else ref
    r = await client.post(
        "/api/v1/images",
        json={"model": "gpt-image-2", "prompt": "x", "input_references": [ref], alias: value},
        headers=AUTH,
    )
    image_api_error(r, "conflicting_image_inputs")


@pytest.mark.parametrize(
    "refs",
    ["data:image/png;base64,AAAA", [42], ["not a url"], [{"type": "image_url"}], [data_url(b"not an image")]],
)
async def test_images_invalid_input_references(client: httpx.AsyncClient, refs: Any) -> None:
    r = await client.post(
        "/api/v1/images", json={"model": "gpt-image-2", "prompt": "x", "input_references": refs}, headers=AUTH
    )
    image_api_error(r, "invalid_input_references", parameter="input_references")


async def test_images_unknown_model(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/images", json={"model": "no-such-model", "prompt": "x"}, headers=AUTH)
    image_api_error(r, "model_not_found", status=404)


async def test_image_input_to_text_only_model(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images",
        json={"model": "hidream", "prompt": "x", "input_references": [data_url(png_bytes())]},
        headers=AUTH,
    )
    image_api_error(r, "image_input_not_supported")
    r = await client.post(
        "/v1/images/generations",
        json={"model": "hidream", "prompt": "x", "imageDataUrl": data_url(png_bytes())},
        headers=AUTH,
    )
    openai_error(r, "image_input_not_supported")


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "hidream", "size": "333x333"}, "size", "'333x333' is not supported by model 'hidream'"),
        ({"model": "gpt-image-2", "quality": "ultra"}, "quality", "Supported: low, medium, high"),
        ({"model": "gpt-image-2", "n": 9}, "n", "between 1 and 4"),
        ({"model": "qwen-image-edit", "output_format": "webp"}, "output_format", "Supported: png, jpeg"),
        ({"model": "gpt-image-2", "aspect_ratio": "7:3"}, "aspect_ratio", "Supported: 1:1"),
        ({"model": "flux-dev", "size": "1000x1000"}, "size", "steps of 16"),
    ],
)
async def test_unsupported_parameter_for_model(
    client: httpx.AsyncClient, body: dict[str, Any], param: str, fragment: str
) -> None:
    r = await client.post("/v1/images/generations", json={"prompt": "x", **body}, headers=AUTH)
    payload = openai_error(r, "invalid_parameter_value")
    assert payload["error"]["param"] == param
    assert fragment in payload["error"]["message"]


async def test_schema_violation_names_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/images/generations", json={"prompt": "x", "strength": 3}, headers=AUTH)
    payload = openai_error(r, "invalid_parameter_value")
    assert payload["error"]["param"] == "strength"


async def test_missing_prompt(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/images/generations", json={"model": "hidream"}, headers=AUTH)
    assert openai_error(r, "missing_required_parameter")["error"]["param"] == "prompt"


async def test_invalid_json(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/images/generations", content=b"{nope", headers={**AUTH, "content-type": "application/json"}
    )
    openai_error(r, "invalid_json")


@pytest.mark.parametrize("path", ["/api/v1/images", "/v1/images/generations", "/api/v1/images/edits"])
async def test_missing_and_invalid_key(path: str) -> None:
    app = checked_app(MockConfig(api_keys=frozenset({"sk-right"})))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        missing = await c.post(path, json={"model": "gpt-image-2", "prompt": "x"})
        wrong = await c.post(path, json={"model": "gpt-image-2", "prompt": "x"}, headers={"x-api-key": "sk-wrong"})
        right = await c.post(path, json={"model": "gpt-image-2", "prompt": "x"}, headers={"x-api-key": "sk-right"})
    assert missing.status_code == 401 and error_code(missing.json()) == "missing_api_key"
    assert wrong.status_code == 401 and error_code(wrong.json()) == "invalid_api_key"
    assert right.status_code != 401


async def test_legacy_route_takes_x_api_key_only(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate-image", json={"model": "hidream", "prompt": "x"}, headers=AUTH)
    assert r.status_code == 401
    body = r.json()
    assert isinstance(body["error"], str) and body["status"] == 401 and body["code"] == "missing_api_key"


async def test_x402_quote_without_key(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/images/generations", json={"prompt": "x", "n": 2}, headers={"x-x402": "true"})
    assert r.status_code == 402
    payment = r.json()["payment"]
    assert payment["amountUsd"] == "0.0132"
    assert payment["paymentId"].startswith("pay_")
    plain = await client.post("/v1/images/generations", json={"prompt": "x"})
    assert plain.status_code == 401


async def test_unknown_path_and_wrong_method_are_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert error_code(r.json()) == "not_found"
    r = await client.get("/v1/images/generations")
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert error_code(r.json()) == "method_not_allowed"


async def test_catalog_unknown_model_endpoints(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/images/models/acme/nothing/endpoints")
    openai_error(r, "model_not_found", status=404)


async def test_legacy_catalog_bad_query(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/image-models", params={"detailed": "maybe"})
    openai_error(r, "invalid_parameter_value")
