"""Public NanoGPT clients and the docs' own examples, replayed request by request against the mock.

Each test sends what a public client sends (path, headers, body) and reads what it reads, as its public
source shows (repository and file in the docstring). The docs examples come from the vendor's docs
repository `Nano-GPT-com/docs` (copies in the project's shared reference folder). The evidence and the
leniency rule are in `../shared/reference/real-clients.md` and the top description of spec/openapi.yaml.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from mockserver import MockConfig
from mockserver.catalog import load_catalog

from .conftest import AUTH, KEY, checked_app, data_url, decode_image, error_code, png_bytes

pytestmark = pytest.mark.anyio

X_API_KEY = {"x-api-key": KEY}
JSON = {"Content-Type": "application/json"}

# Every model the docs examples and the public clients name (real-clients.md, "Models clients and docs name").
NAMED_MODELS = [
    "gpt-image-1",
    "openai/gpt-image-1",
    "flux-kontext",
    "flux-kontext/dev",
    "gpt-4o-image",
    "flux-lora/inpainting",
    "flux-dev-image-to-image",
    "ghiblify",
    "gemini-flash-edit",
    "hidream-edit",
    "bagel",
    "SDXL-ArliMix-v1",
    "Upscaler",
    "recraft-v3",
    "midjourney",
    "hidream",
    "chroma",
    "z-image-turbo",
    "qwen-image",
    "qwen-image-2512",
    "flux-schnell",
    "dall-e-3",
]


def first_image(body: dict[str, Any]) -> tuple[int, int]:
    return decode_image(body["data"][0]["b64_json"]).size


async def remaining_balance(client: httpx.AsyncClient) -> float:
    """The key's balance, read the way clients read it: `remainingBalance` of a cheap generation."""
    r = await client.post(
        "/v1/images/generations", json={"model": "pruna-ai/p-image/text-to-image", "prompt": "probe"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    return float(r.json()["remainingBalance"]) + float(r.json()["cost"])


# --------------------------------------------------------------------------------------------- clients


async def test_sillytavern_model_picker_and_generation(client: httpx.AsyncClient) -> None:
    """SillyTavern/SillyTavern `src/endpoints/stable-diffusion.js` (router `nanogpt`).

    `/models`: GET https://nano-gpt.com/api/models with `x-api-key` and `Content-Type: application/json`;
    fails unless `ok`; reads `data.models.image` (must be an object) and maps `Object.values(...)` to
    `{value: x.model, text: x.name}`. `/generate`: forwards the extension's JSON body to POST
    /api/generate-image with `x-api-key` (fields: prompt, negative_prompt, model, width, height, resolution
    `WxH`, num_steps, scale, seed, showExplicitContent, nImages) and reads `data.data[0].b64_json`.
    """
    r = await client.get("/api/models", headers={**X_API_KEY, **JSON})
    assert r.is_success
    image_models = r.json()["models"]["image"]
    assert isinstance(image_models, dict) and image_models
    options = [{"value": x["model"], "text": x["name"]} for x in image_models.values()]
    assert all(o["value"] and o["text"] for o in options)
    chosen = next(o["value"] for o in options if o["value"] == "hidream")

    body = {
        "prompt": "a knight in a moonlit forest",
        "negative_prompt": "blurry, lowres",
        "model": chosen,
        "width": 1024,
        "height": 1024,
        "resolution": "1024x1024",
        "num_steps": 30,
        "scale": 7,
        "seed": 1234,
        "showExplicitContent": True,
        "nImages": 1,
    }
    r = await client.post("/api/generate-image", json=body, headers={**X_API_KEY, **JSON})
    assert r.is_success, r.text
    image = r.json()["data"][0]["b64_json"]
    assert decode_image(image).size == (1024, 1024)


async def test_openwebui_nanogpt_images_action(client: httpx.AsyncClient) -> None:
    """Orciotrox/Nano-GPT_OpenWebUI_Functions `Open WebUI Functions/NanoGPTImages.py`.

    `fetch_models`: GET {base}/models (base `https://nano-gpt.com/api`) with `Authorization: Bearer` and
    `Content-Type: application/json`, `raise_for_status()`, then `json["models"]["image"]` items into a
    pydantic `ImageModel(id=model, name, description, cost: dict, maxImages: int, resolutions=[r["value"]],
    engine: str)`. `generate_image`: POST {base}/generate-image with `x-api-key`, JSON `{prompt, model,
    width, height}` (1024 by default); reads `response["data"][0]["b64_json"]` as a string.
    """
    r = await client.get("/api/models", headers={**AUTH, **JSON})
    r.raise_for_status()
    models = r.json().get("models", {}).get("image", {})
    assert models
    parsed = []
    for key, info in models.items():
        model = {
            "id": info.get("model"),
            "name": info.get("name", key),
            "description": info.get("description", ""),
            "cost": info.get("cost", {}),
            "maxImages": info.get("maxImages", 1),
            "resolutions": [res["value"] for res in info.get("resolutions", [])],
            "engine": info.get("engine", ""),
        }
        # the pydantic model's field types
        assert isinstance(model["id"], str) and isinstance(model["name"], str)
        assert isinstance(model["description"], str) and isinstance(model["engine"], str)
        assert isinstance(model["cost"], dict) and isinstance(model["maxImages"], int)
        assert all(isinstance(v, str) for v in model["resolutions"])
        parsed.append(model)

    selected = next(m for m in parsed if m["id"] == "recraft-v3")
    body = {"prompt": "A beautiful landscape", "model": selected["id"], "width": 1024, "height": 1024}
    r = await client.post("/api/generate-image", json=body, headers={**X_API_KEY, **JSON})
    assert r.status_code == 200, r.text
    image_data = r.json()["data"][0].get("b64_json")
    assert isinstance(image_data, str)
    assert decode_image(image_data).size == (1024, 1024)


async def test_nanochat_model_catalog(client: httpx.AsyncClient) -> None:
    """nanogpt-community/nanochat `src/lib/backend/models/nano-gpt.ts` (`fetchNanoGPTModels`).

    GET https://nano-gpt.com/api/models/image and /api/models/video without credentials; when `ok`, reads
    `models.image` as `Object.entries` keyed by model ID: name, dateAdded (`new Date(...)`), description,
    cost (JSON-stringified), additionalParams, defaultSettings, resolutions, maxImages. A non-ok video
    catalog is skipped. (Its third call, the text catalog `/api/v1/models`, is outside an image mock.)
    """
    r = await client.get("/api/models/image")
    assert r.is_success
    entries = r.json()["models"]["image"]
    assert set(entries) >= set(NAMED_MODELS)
    for model_id, m in entries.items():
        assert m["model"] == model_id
        assert m.get("name")
        assert "T" in m["dateAdded"]  # an ISO date Date() parses
        assert json.dumps(m["cost"]) != "{}"
        assert isinstance(m["maxImages"], int)
        assert all("value" in res for res in m["resolutions"])
    video = await client.get("/api/models/video")
    assert not video.is_success  # nanochat tolerates it: `if (videoModelsRes.ok)`


async def test_nanogptjs_image_and_batch(client: httpx.AsyncClient) -> None:
    """kilkelly/nanogptjs `src/nanogptjs.js`.

    `image(prompt)`: POST https://nano-gpt.com/api/generate-image with `x-api-key`, JSON `{prompt, model
    (defaultModel, 'dall-e-3' in examples/image-basic.js), width: 1024, height: 1024, negative_prompt: '',
    num_steps: 25, sampler_name: 'DPM++ 2S a Karras', scale: 6.5, resolution: '1024x1024', nImages: 1}`;
    reads `data[0].b64_json` and keeps the rest as metadata. `imageBatch`: the same with `nImages:
    batchSize`, reads every `data[i].b64_json`. `models()`: GET /api/models without credentials.
    """
    common = {
        "width": 1024,
        "height": 1024,
        "negative_prompt": "",
        "num_steps": 25,
        "sampler_name": "DPM++ 2S a Karras",
        "scale": 6.5,
        "resolution": "1024x1024",
    }
    body = {"prompt": "a beautiful landscape, bright sunshine, green fields", "model": "dall-e-3", **common}
    r = await client.post("/api/generate-image", json={**body, "nImages": 1}, headers={**X_API_KEY, **JSON})
    assert r.is_success, r.text
    parsed = r.json()
    assert decode_image(parsed.pop("data")[0]["b64_json"]).size == (1024, 1024)
    assert parsed["cost"] == pytest.approx(0.04)

    batch = {"prompt": "a beautiful landscape with a large cat", "model": "hidream", **common, "nImages": 2}
    r = await client.post("/api/generate-image", json=batch, headers={**X_API_KEY, **JSON})
    assert r.is_success, r.text
    assert [decode_image(i["b64_json"]).size for i in r.json()["data"]] == [(1024, 1024)] * 2

    r = await client.get("/api/models")
    assert r.is_success and "image" in r.json()["models"]


async def test_char2vid_live_records_resolve(client: httpx.AsyncClient) -> None:
    """dkylepeppers-alt/char2vid `tests/fixtures/nanogpt/catalogs.json` (sanitized live records, 2026-09-14).

    The live image catalog held `birefnet/v2`, `bytedance/seedream-v5.0-pro` (legacy `resolutions` with
    ratios and tiers, `max_input_images` 10, a 10 MB provider limit) and `gpt-image-2`; the client follows
    each model's `endpoints` link.
    """
    listed = {m["id"]: m for m in (await client.get("/api/v1/images/models")).json()["data"]}
    seedream = listed["bytedance/seedream-v5.0-pro"]["supported_parameters"]
    assert set(seedream["resolutions"]) >= {"1:1", "16:9", "9:16", "1k", "2k"}
    assert seedream["input_image_constraints"]["provider"]["max_bytes"] == 10485760
    assert "auto" in listed["birefnet/v2"]["supported_parameters"]["resolutions"]
    for model_id in ("birefnet/v2", "bytedance/seedream-v5.0-pro", "gpt-image-2"):
        r = await client.get(listed[model_id]["endpoints"])
        assert r.status_code == 200 and r.json()["id"] == model_id


@pytest.mark.parametrize("model_id", NAMED_MODELS)
async def test_every_named_model_resolves(client: httpx.AsyncClient, model_id: str) -> None:
    """real-clients.md: every model the docs examples and the public clients name resolves everywhere."""
    r = await client.get(f"/api/v1/images/models/{model_id}/endpoints")
    assert r.status_code == 200, r.text
    legacy = {m["id"] for m in (await client.get("/api/v1/image-models")).json()["data"]}
    assert model_id in legacy
    assert model_id in (await client.get("/api/models")).json()["models"]["image"]
    model = load_catalog().get(model_id)
    assert model.price_usd > 0


# --------------------------------------------------------------------------------------------- docs examples


async def test_docs_image_api_quickstart(client: httpx.AsyncClient) -> None:
    """`api-reference/image-generation.mdx` Quickstart and `image-api-generate.mdx` text-to-image example."""
    assert (await client.get("/api/v1/images/models")).status_code == 200
    assert (await client.get("/api/v1/images/models/gpt-image-2/endpoints")).status_code == 200
    body = {
        "model": "gpt-image-2",
        "prompt": "A clean product photo of a matte black espresso machine on a white counter",
        "resolution": "1024x1024",
        "quality": "medium",
        "n": 1,
    }
    r = await client.post("/api/v1/images", json=body, headers={**X_API_KEY, **JSON})
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (1024, 1024)


async def test_docs_image_api_image_to_image(client: httpx.AsyncClient) -> None:
    """`image-api-generate.mdx` image-to-image example and the `input_references` shapes of the guide."""
    body = {
        "model": "gpt-image-2",
        "prompt": "Make this look like a polished studio product photo",
        "input_references": [
            {"type": "image_url", "image_url": {"url": "https://example.com/reference.png"}},
            "https://example.com/image.png",
            data_url(png_bytes()),
        ],
        "resolution": "1024x1024",
        "quality": "medium",
        "n": 1,
    }
    r = await client.post("/api/v1/images", json=body, headers={**X_API_KEY, **JSON})
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (1024, 1024)


async def test_docs_openai_route_examples(client: httpx.AsyncClient) -> None:
    """`image-generation-openai.mdx`: basic, `response_format: url`, and img2img (flux-kontext) examples."""
    bearer = {**AUTH, **JSON}
    basic = {"model": "hidream", "prompt": "A sunset over a mountain range", "n": 1, "size": "1024x1024"}
    r = await client.post("/v1/images/generations", json=basic, headers=bearer)
    assert r.status_code == 200 and first_image(r.json()) == (1024, 1024)

    url = {**basic, "prompt": "A neon city skyline at night", "response_format": "url"}
    r = await client.post("/v1/images/generations", json=url, headers=bearer)
    assert r.status_code == 200
    link = r.json()["data"][0]["url"]
    fetched = await client.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert fetched.status_code == 200 and fetched.headers["content-type"].startswith("image/")

    img2img = {
        "model": "flux-kontext",
        "prompt": "Transform this image into a watercolor painting",
        "n": 1,
        "size": "1024x1024",
        "imageDataUrl": data_url(png_bytes(fmt="JPEG"), "image/jpeg"),
    }
    r = await client.post("/v1/images/generations", json=img2img, headers=bearer)
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (1024, 1024)


async def test_docs_2025_guide_examples(client: httpx.AsyncClient) -> None:
    """`image-generation.mdx` @2025-12 (the old guide clients copied): multi-image gpt-4o-image, the
    flux-kontext extra parameters, an https URL in `imageDataUrl`, and recraft-v3 on the older route."""
    bearer = {**AUTH, **JSON}
    multi = {
        "model": "gpt-4o-image",
        "prompt": "Combine these images into a creative collage",
        "n": 1,
        "size": "1024x1024",
        "imageDataUrls": [data_url(png_bytes(fmt="JPEG"), "image/jpeg"), data_url(png_bytes())] * 1
        + [data_url(png_bytes(fmt="JPEG"), "image/jpeg")],
    }
    r = await client.post("/v1/images/generations", json=multi, headers=bearer)
    assert r.status_code == 200, r.text
    extras = {
        "model": "flux-kontext",
        "prompt": "Transform to cyberpunk style",
        "imageDataUrl": data_url(png_bytes()),
        "size": "1024x1024",
        "n": 1,
        "strength": 0.8,
        "guidance_scale": 7.5,
        "num_inference_steps": 30,
        "seed": 42,
        "kontext_max_mode": True,
    }
    assert (await client.post("/v1/images/generations", json=extras, headers=bearer)).status_code == 200
    fetched = {**extras, "imageDataUrl": "https://example.com/your-image.jpg"}
    r = await client.post("/v1/images/generations", json=fetched, headers=bearer)
    assert r.status_code == 200, r.text
    legacy = {"model": "recraft-v3", "prompt": "A serene mountain landscape at sunset", "width": 1024, "height": 1024}
    r = await client.post("/api/generate-image", json=legacy, headers=X_API_KEY)
    assert r.status_code == 200, r.text
    result = r.json()
    assert first_image(result) == (1024, 1024)
    assert result["paymentSource"] == "USD" and result["remainingBalance"] is not None


@pytest.mark.parametrize("path", ["/api/v1/images/edits", "/api/v1/images/edit"])
async def test_docs_edit_examples(client: httpx.AsyncClient, path: str) -> None:
    """`image-edits.mdx`: multipart (single, multi-image) and JSON (mask, multi-image) with gpt-image-1."""
    r = await client.post(
        path,
        data={"model": "gpt-image-1", "prompt": "Remove the background", "size": "1024x1024"},
        files={"image": ("product.png", png_bytes(), "image/png")},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (1024, 1024)
    r = await client.post(
        path,
        data={"model": "gpt-image-1", "prompt": "Combine these references into one product image"},
        files=[
            ("image[]", ("reference-1.png", png_bytes(), "image/png")),
            ("image[]", ("reference-2.jpg", png_bytes(fmt="JPEG"), "image/jpeg")),
        ],
        headers=X_API_KEY,
    )
    assert r.status_code == 200, r.text
    masked = {
        "model": "gpt-image-1",
        "prompt": "Remove the background",
        "imageDataUrl": data_url(png_bytes(64, 64)),
        "maskDataUrl": data_url(png_bytes(64, 64, (255, 255, 255))),
    }
    assert (await client.post(path, json=masked, headers=AUTH)).status_code == 200
    multi = {
        "model": "gpt-image-1",
        "prompt": "Combine these references into one product image",
        "imageDataUrls": [data_url(png_bytes()), data_url(png_bytes(fmt="JPEG"), "image/jpeg")],
    }
    assert (await client.post(path, json=multi, headers=AUTH)).status_code == 200


async def test_docs_legacy_catalog_example(client: httpx.AsyncClient) -> None:
    """`image-models.mdx`: GET /api/v1/image-models?detailed=true with Bearer; resolutions are strings."""
    r = await client.get("/api/v1/image-models", params={"detailed": "true"}, headers=AUTH)
    assert r.status_code == 200
    for item in r.json()["data"]:
        assert all(isinstance(v, str) for v in item["supported_parameters"]["resolutions"])


# --------------------------------------------------------------------------------------------- leniency


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("flux-schnell", "square_hd", (1024, 1024)),
        ("flux-schnell", "landscape_16_9", (1024, 576)),
        ("z-image-turbo", "portrait_4_3", (768, 1024)),
        ("hidream", "1024*1024", (1024, 1024)),
        ("hidream", "256x256", (256, 256)),  # the vendor OpenAPI's own example
        ("openai/gpt-image-2.5/flare/text-to-image", "2K", (2048, 2048)),
        ("qwen-image", "auto", (1328, 1328)),
    ],
)
async def test_documented_size_forms(
    client: httpx.AsyncClient, model: str, size: str, expected: tuple[int, int]
) -> None:
    """`image-models.mdx`: resolutions are model-specific strings (named sizes, `W*H`, tiers, `auto`)."""
    r = await client.post("/v1/images/generations", json={"model": model, "prompt": "p", "size": size}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == expected


async def test_unlisted_size_names_what_the_model_supports(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/images/generations", json={"model": "hidream", "prompt": "p", "size": "square_hd"}, headers=AUTH
    )
    assert r.status_code == 400
    assert error_code(r.json()) == "invalid_parameter_value"
    assert "1024x1024" in r.json()["error"]["message"]


async def test_resolution_synonym_and_scale_factor(client: httpx.AsyncClient) -> None:
    """`resolution` on the OpenAI route (sent for qwen-image by public code); `2x` on the Upscaler."""
    r = await client.post(
        "/v1/images/generations",
        json={"model": "qwen-image", "prompt": "p", "resolution": "1664x928", "response_format": "b64_json"},
        headers=AUTH,
    )
    assert r.status_code == 200 and first_image(r.json()) == (1664, 928)
    r = await client.post(
        "/v1/images/generations",
        json={"model": "Upscaler", "prompt": "upscale", "size": "2x", "imageDataUrl": data_url(png_bytes(64, 48))},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (128, 96)


async def test_image_url_field(client: httpx.AsyncClient) -> None:
    """skills.md: `image` (a URL) is the image-to-image input of the OpenAI-compatible route."""
    body = {
        "model": "flux-kontext",
        "prompt": "Convert to oil painting style",
        "image": "https://example.com/photo.jpg",
        "strength": 0.8,
    }
    r = await client.post("/v1/images/generations", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    text_only = {**body, "model": "hidream"}
    r = await client.post("/v1/images/generations", json=text_only, headers=AUTH)
    assert r.status_code == 400 and error_code(r.json()) == "image_input_not_supported"


# --------------------------------------------------------------------------------------------- NSFW


async def test_docs_nsfw_example(client: httpx.AsyncClient) -> None:
    """`nsfw-image.mdx`: two URLs in `image_urls`, `x-api-key`; $0.0015 per image."""
    body = {"image_urls": ["https://example.com/image-1.jpg", "https://example.com/nsfw/image-2.jpg"]}
    r = await client.post("/api/nsfw/image", json=body, headers={**X_API_KEY, **JSON})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "nsfw-classifier"
    assert out["inputCount"] == 2 and out["truncated"] is False
    assert out["has_nsfw_concepts"] == [False, True] and out["is_nsfw"] is True
    assert out["cost"] == pytest.approx(0.003) and out["currency"] == "USD"


async def test_nsfw_data_url_in_image_url_and_truncation(client: httpx.AsyncClient) -> None:
    """Public client code posts a generated image as a data URL in `imageUrl` with Bearer-less `x-api-key`."""
    r = await client.post(
        "/api/nsfw/image",
        json={"imageUrl": data_url(png_bytes()), "model": "nsfw-classifier"},
        headers={**X_API_KEY, **JSON},
    )
    assert r.status_code == 200 and r.json()["is_nsfw"] is False
    many = [f"https://example.com/{i}.png" for i in range(12)]
    r = await client.post("/api/nsfw/image", json={"imageUrls": many}, headers=AUTH)
    out = r.json()
    assert (out["inputCount"], out["truncated"], len(out["has_nsfw_concepts"])) == (10, True, 10)
    assert out["cost"] == pytest.approx(0.015)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({}, X_API_KEY, 400, "missing_image_input"),
        ({"image_urls": []}, X_API_KEY, 400, "missing_image_input"),
        ({"imageUrl": "https://example.com/a.png", "model": "other"}, X_API_KEY, 400, "invalid_parameter_value"),
        ({"imageUrl": "https://example.com/a.png"}, {}, 401, "missing_api_key"),
        ({"imageUrl": "https://example.com/a.png"}, {"x-api-key": ""}, 401, "missing_api_key"),
    ],
)
async def test_nsfw_errors(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], status: int, code: str
) -> None:
    r = await client.post("/api/nsfw/image", json=body, headers=headers)
    assert r.status_code == status, r.text
    out = r.json()
    assert isinstance(out["error"], str) and out["code"] == code and out["status"] == status


async def test_nsfw_bad_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/nsfw/image", content=b"{nope", headers={**X_API_KEY, **JSON})
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"


# --------------------------------------------------------------------------------------------- moderation


async def test_moderation_models_list(client: httpx.AsyncClient) -> None:
    """`moderation-models.mdx`: detailed (default) and `detailed=false`; an API key is required."""
    r = await client.get("/api/v1/moderation-models", headers=AUTH)
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert {"omni-moderation-latest", "meta-llama/llama-guard-4-12b"} <= set(ids)
    assert all({"context_length", "capabilities", "pricing"} <= set(m) for m in r.json()["data"])
    basic = await client.get("/api/v1/moderation-models", params={"detailed": "false"}, headers=X_API_KEY)
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in basic.json()["data"])
    assert (await client.get("/api/v1/moderation-models")).status_code == 401
    bad = await client.get("/api/v1/moderation-models", params={"detailed": "maybe"}, headers=AUTH)
    assert bad.status_code == 400 and error_code(bad.json()) == "invalid_parameter_value"


async def test_docs_inline_moderation_image_example(client: httpx.AsyncClient) -> None:
    """`inline-moderation.mdx` "Image Generation": `moderation: true`, model `openai/gpt-image-1`."""
    body = {
        "model": "openai/gpt-image-1",
        "prompt": "A clean product photo of a ceramic coffee mug on a kitchen counter",
    }
    r = await client.post("/api/v1/images/generations", json=body, headers={**AUTH, **JSON, "moderation": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["x-nanogpt-inline-moderation-model"] == "omni-moderation-latest"
    assert r.headers["x-nanogpt-inline-moderation-flagged"] == "false"
    moderation_cost = float(r.headers["x-nanogpt-inline-moderation-cost-usd"])
    assert moderation_cost > 0
    assert r.json()["cost"] == pytest.approx(0.042 + moderation_cost)
    plain = await client.post("/api/v1/images/generations", json=body, headers=AUTH)
    assert "x-nanogpt-inline-moderation-model" not in plain.headers
    only_model = await client.post(
        "/api/v1/images/generations", json=body, headers={**AUTH, "moderation-model": "meta-llama/llama-guard-4-12b"}
    )
    assert "x-nanogpt-inline-moderation-model" not in only_model.headers  # documented: alone it does nothing


@pytest.mark.parametrize(
    ("path", "trigger"),
    [
        ("/api/v1/images/generations", {"prompt": "[mock:flagged] a mug"}),
        ("/v1/images/generations", {"prompt": "a mug", "prefer": "moderation=flagged"}),
        ("/api/v1/images", {"prompt": "[mock:flagged] a mug"}),
    ],
)
async def test_inline_moderation_blocks_and_charges_only_the_check(
    client: httpx.AsyncClient, path: str, trigger: dict[str, str]
) -> None:
    before = await remaining_balance(client)
    headers = {**AUTH, "moderation": "meta-llama/llama-guard-4-12b"}
    if "prefer" in trigger:
        headers["Prefer"] = trigger["prefer"]
    r = await client.post(path, json={"model": "gpt-image-1", "prompt": trigger["prompt"]}, headers=headers)
    assert r.status_code == 400, r.text
    body = r.json()
    assert error_code(body) == "content_policy_violation"
    assert body["moderation"]["model"] == "meta-llama/llama-guard-4-12b"
    assert body["moderation"]["results"][0]["flagged"] is True
    assert "[mock:flagged]" not in r.text  # the input is not echoed
    assert r.headers["x-nanogpt-inline-moderation-flagged"] == "true"
    cost = float(r.headers["x-nanogpt-inline-moderation-cost-usd"])
    after = await remaining_balance(client)
    assert before - after == pytest.approx(0.005 + cost)  # the probe plus the moderation check only


async def test_inline_moderation_fails_closed(client: httpx.AsyncClient) -> None:
    before = await remaining_balance(client)
    for headers, prompt in (
        ({**AUTH, "moderation": "on"}, "[mock:moderation-down] a mug"),
        ({**AUTH, "moderation": "yes", "Prefer": "moderation=unavailable"}, "a mug"),
    ):
        r = await client.post(
            "/api/v1/images/edits",
            json={"model": "gpt-image-1", "prompt": prompt, "imageDataUrl": data_url(png_bytes())},
            headers=headers,
        )
        assert r.status_code == 503, r.text
        assert error_code(r.json()) == "moderation_unavailable"
    after = await remaining_balance(client)
    assert before - after == pytest.approx(0.005)  # nothing but the probe was charged


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        (
            "/v1/images/generations",
            {"model": "gpt-image-1", "prompt": "p"},
            {**AUTH, "moderation": "omni-moderation-latest", "moderation-model": "meta-llama/llama-guard-4-12b"},
            400,
            "conflicting_moderation_model",
        ),
        (
            "/v1/images/generations",
            {"model": "gpt-image-1", "prompt": "p"},
            {**AUTH, "moderation": "nope/guard"},
            404,
            "model_not_found",
        ),
        (
            "/api/v1/images/generations",
            {"model": "gpt-image-1", "prompt": "p"},
            {"x-x402": "true", "moderation": "true"},
            400,
            "inline_moderation_requires_api_key",
        ),
        (
            "/v1/images/generations",
            {"model": "gpt-image-1", "prompt": ""},
            {**AUTH, "moderation": "1"},
            400,
            "empty_moderation_input",
        ),
        (
            "/v1/images/generations",
            {"model": "gpt-image-1", "prompt": "p", "imageDataUrl": data_url(png_bytes())},
            {**AUTH, "moderation": "meta-llama/llama-guard-3-8b"},
            400,
            "unsupported_input_modality",
        ),
        (
            "/api/v1/images",
            {"model": "gpt-image-2", "prompt": "p", "images": ["iVBORw0KGgoAAAANSUhEUg=="]},
            {**AUTH, "moderation": "true"},
            400,
            "unsupported_moderation_input",
        ),
    ],
)
async def test_inline_moderation_errors(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str], status: int, code: str
) -> None:
    r = await client.post(path, json=body, headers=headers)
    assert r.status_code == status, r.text
    assert error_code(r.json()) == code
    if path == "/api/v1/images":
        assert r.json()["code"] == code and r.json()["error"]["parameter"] == "moderation"
    elif code != "model_not_found":
        assert r.json()["error"]["param"] == "moderation"


# --------------------------------------------------------------------------------------------- x402


async def test_x402_endpoint_matrix(client: httpx.AsyncClient) -> None:
    """`x402.mdx`: `GET /api/v1/x402/endpoints` (and `?supported=all`), no authentication."""
    r = await client.get("/api/v1/x402/endpoints")
    assert r.status_code == 200
    body = r.json()
    listed = {(e["method"], e["endpoint"]) for e in body["data"]}
    assert listed == {("POST", "/api/v1/images/generations"), ("POST", "/api/v1/images/edits")}
    assert all(e["supported"] and e["quoteType"] == "deterministic" for e in body["data"])
    everything = (await client.get("/api/v1/x402/endpoints", params={"supported": "all"})).json()
    assert everything["meta"]["unsupportedIncluded"] is True
    assert len(everything["data"]) == everything["meta"]["totalCount"] > body["meta"]["count"]
    bad = await client.get("/api/v1/x402/endpoints", params={"supported": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "supported"


async def test_x402_quote_pay_complete_flow(client: httpx.AsyncClient) -> None:
    """`x402.mdx` Flow 1 with the docs' image example: quote -> status -> complete (paid) -> 200, once."""
    before = await remaining_balance(client)
    original = {
        "model": "gpt-image-1",
        "prompt": "a product photo of a brushed steel desk lamp",
        "size": "1024x1024",
        "n": 1,
    }
    quote = await client.post("/api/v1/images/generations", json=original, headers={**JSON, "x-x402": "true"})
    assert quote.status_code == 402
    payment = quote.json()["payment"]
    assert payment["amountUsd"] == "0.0420"
    assert {o["scheme"] for o in payment["accepted"]} >= {"nano", "lightning-l402"}
    status_path = urlsplit(payment["statusUrl"]).path
    complete_path = urlsplit(payment["completeUrl"]).path

    pending = await client.get(status_path)
    assert pending.status_code == 200
    assert pending.json()["status"] == "pending" and pending.json()["readyToComplete"] is False
    assert int(pending.headers["Retry-After"]) == int(pending.headers["X-Poll-After"]) > 0

    unpaid = await client.post(complete_path)
    assert unpaid.status_code == 402 and unpaid.json()["payment"]["paymentId"] == payment["paymentId"]

    done = await client.post(complete_path, headers={"X-PAYMENT": base64.b64encode(b'{"proof":1}').decode()})
    assert done.status_code == 200, done.text
    assert first_image(done.json()) == (1024, 1024)
    assert "remainingBalance" not in done.json()  # no account was charged

    assert (await client.get(status_path)).json()["status"] == "completed"
    again = await client.post(complete_path, headers={"X-PAYMENT": "proof"})
    assert again.status_code == 409 and error_code(again.json()) == "payment_already_completed"
    after = await remaining_balance(client)
    assert before - after == pytest.approx(0.005)  # only the two probes touched the key's balance


async def test_x402_exact_and_l402_replays(client: httpx.AsyncClient) -> None:
    """`x402.mdx` Flows 2 and 3: replay the quoted request with `X-PAYMENT` or `Authorization: L402`."""
    original = {"model": "hidream", "prompt": "a lighthouse", "size": "1024x1024"}
    quote = (await client.post("/api/v1/images/generations", json=original, headers={"x-x402": "true"})).json()
    payment_id = quote["payment"]["paymentId"]
    proof = base64.b64encode(json.dumps({"paymentId": payment_id}).encode()).decode()
    r = await client.post("/api/v1/images/generations", json=original, headers={"X-PAYMENT": proof})
    assert r.status_code == 200, r.text
    assert first_image(r.json()) == (1024, 1024)
    reused = await client.post("/api/v1/images/generations", json=original, headers={"X-PAYMENT": payment_id})
    assert reused.status_code == 402  # single use: a fresh quote

    other = {**original, "prompt": "a different lighthouse"}
    quote = (await client.post("/api/v1/images/generations", json=other, headers={"x-x402": "true"})).json()
    lightning = next(o for o in quote["payment"]["accepted"] if o["scheme"] == "lightning-l402")
    mismatched = await client.post(
        "/api/v1/images/generations",
        json=original,
        headers={"Authorization": f"L402 {lightning['l402Token']}:deadbeef"},
    )
    assert mismatched.status_code == 402  # bound to the quoted body
    r = await client.post(
        "/api/v1/images/generations", json=other, headers={"Authorization": f"L402 {lightning['l402Token']}:deadbeef"}
    )
    assert r.status_code == 200, r.text


async def test_x402_unknown_payment_and_expiry(client: httpx.AsyncClient) -> None:
    for r in (await client.get("/api/x402/status/pay_unknown"), await client.post("/api/x402/complete/pay_unknown")):
        assert r.status_code == 404 and error_code(r.json()) == "payment_not_found"
    quote = (await client.post("/api/v1/images/generations", json={"prompt": "p"}, headers={"x-x402": "true"})).json()
    payment_id = quote["payment"]["paymentId"]
    assert (await client.post("/_mock/clock", json={"advance": 3600})).status_code == 200
    assert (await client.get(f"/api/x402/status/{payment_id}")).json()["status"] == "expired"
    late = await client.post(f"/api/x402/complete/{payment_id}", headers={"X-PAYMENT": "proof"})
    assert late.status_code == 410 and error_code(late.json()) == "payment_expired"


async def test_x402_multipart_edit_needs_credentials(client: httpx.AsyncClient) -> None:
    """`x402.mdx`: "Multipart uploads require normal auth before conversion" -> 401, not a quote."""
    r = await client.post(
        "/api/v1/images/edits",
        data={"model": "gpt-image-1", "prompt": "Remove the background"},
        files={"image": ("product.png", png_bytes(), "image/png")},
        headers={"x-x402": "true"},
    )
    assert r.status_code == 401 and error_code(r.json()) == "missing_api_key"
    json_edit = {"model": "gpt-image-1", "prompt": "Remove the background", "imageDataUrl": data_url(png_bytes())}
    quoted = await client.post("/api/v1/images/edits", json=json_edit, headers={"x-x402": "true"})
    assert quoted.status_code == 402 and "payment" in quoted.json()


# --------------------------------------------------------------------------------------------- CORS


async def test_cors_as_the_live_api_answers(client: httpx.AsyncClient) -> None:
    """Browser apps: preflight and `Access-Control-Allow-Origin: *` on catalogs and generation."""
    origin = {"Origin": "https://app.example"}
    pre = await client.options(
        "/api/v1/images/generations",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, moderation",
        },
    )
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "moderation" in pre.headers["access-control-allow-headers"].lower()
    r = await client.get("/api/models", headers=origin)
    assert r.headers["access-control-allow-origin"] == "*"


async def test_cors_switch_off() -> None:
    app = checked_app(MockConfig(cors=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock.test") as c:
        r = await c.get("/api/models", headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
