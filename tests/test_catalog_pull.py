"""``nanogpt-mock catalog pull`` against locally served recordings (never the internet)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mockserver import MockConfig, create_app
from mockserver.catalog import load_catalog
from mockserver.catalog_pull import main
from mockserver.cli import main as cli_main
from mockserver.serving import ServerThread, serve

from .conftest import AUTH, decode_image

pytestmark = pytest.mark.socket


# A recording in the shapes of the documented examples and of the sanitized live records in
# dkylepeppers-alt/char2vid tests/fixtures/nanogpt/catalogs.json (typed and legacy descriptors, a slashed ID,
# an unknown control the mock does not understand, which must survive the pull).
IMAGES_MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "gpt-image-2",
            "object": "model",
            "name": "GPT Image 2",
            "description": "OpenAI image generation and editing model.",
            "created": 1760000000,
            "owned_by": "openai",
            "supported_parameters": {
                "resolution": {"type": "enum", "values": ["1024x1024", "1024x768"], "default": "1024x1024"},
                "n": {"type": "range", "min": 1, "max": 4, "default": 1},
                "quality": {"type": "enum", "values": ["low", "medium", "high"], "default": "medium"},
                "input_references": {"type": "range", "min": 0, "max": 4},
                "seed": {"type": "range", "min": 0, "max": 4294967295},
            },
            "supports_streaming": False,
            "endpoints": "/api/v1/images/models/gpt-image-2/endpoints",
            "capabilities": {"image_generation": True, "image_to_image": True, "inpainting": False, "nsfw": False},
            "category": "image",
        },
        {
            "id": "bytedance/seedream-v5.0-pro",
            "object": "model",
            "name": "Seedream 5.0 Pro",
            "created": 1778544000,
            "owned_by": "bytedance",
            "capabilities": {"image_generation": True, "image_to_image": True, "inpainting": False, "nsfw": True},
            "supported_parameters": {
                "resolutions": ["1:1", "16:9", "9:16", "1k", "2k"],
                "max_images": 4,
                "max_input_images": 10,
                "input_image_constraints": {
                    "max_items": 10,
                    "provider": {"max_bytes": 10485760, "source": "provider-docs"},
                },
                "palette": {"type": "color_picker", "default": "#ffffff", "swatches": ["#ffffff", "#000000"]},
            },
            "endpoints": "/api/v1/images/models/bytedance/seedream-v5.0-pro/endpoints",
        },
        {
            "id": "fixture/named-sizes",
            "object": "model",
            "name": "Fixture Named Sizes",
            "created": 1770000000,
            "owned_by": "fixture",
            "capabilities": {"image_generation": True},
            "supported_parameters": {"resolutions": ["square_hd", "landscape_16_9", "1024*1024"], "max_images": 2},
        },
    ],
    "meta": {"count": 3, "generated_at": "2026-09-14T00:00:00.000Z"},
}
ENDPOINTS: dict[str, dict[str, Any]] = {
    "gpt-image-2": {
        "id": "gpt-image-2",
        "endpoints": [
            {
                "provider_name": "OpenAI",
                "provider_slug": "openai",
                "provider_tag": None,
                "supported_parameters": IMAGES_MODELS["data"][0]["supported_parameters"],
                "allowed_passthrough_parameters": [],
                "supports_streaming": False,
                "pricing": [
                    {"billable": "output_image", "unit": "image", "cost_usd": 0.06551, "resolution": "1024x1024"},
                    {"billable": "output_image", "unit": "image", "cost_usd": 0.0983, "resolution": "1024x768"},
                ],
            }
        ],
    },
    "bytedance/seedream-v5.0-pro": {
        "id": "bytedance/seedream-v5.0-pro",
        "endpoints": [
            {
                "provider_name": "BytePlus",
                "provider_slug": "byteplus",
                "provider_tag": None,
                "supported_parameters": {},
                "allowed_passthrough_parameters": [],
                "supports_streaming": False,
                "pricing": [
                    {"billable": "output_image", "unit": "image", "cost_usd": 0.045, "resolution": "1k"},
                    {"billable": "output_image", "unit": "image", "cost_usd": 0.09, "resolution": "2k"},
                ],
            }
        ],
    },
    "fixture/named-sizes": {"id": "fixture/named-sizes", "endpoints": []},
}
LEGACY: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "fixture/named-sizes",
            "object": "model",
            "created": 1770000000,
            "owned_by": "fixture",
            "pricing": {"per_image": {"1024*1024": 0.01}, "currency": "USD"},
            "tags": ["text-to-image"],
        }
    ],
}


def recording(overrides: dict[str, Response] | None = None) -> Starlette:
    overrides = overrides or {}

    async def models(request: Request) -> Response:
        return overrides.get("models") or JSONResponse(IMAGES_MODELS)

    async def endpoints(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        if model_id not in ENDPOINTS:
            return JSONResponse({"error": {"message": "not found"}}, status_code=404)
        return JSONResponse(ENDPOINTS[model_id])

    async def legacy(request: Request) -> Response:
        assert request.query_params["detailed"] == "true"
        return overrides.get("legacy") or JSONResponse(LEGACY)

    return Starlette(
        routes=[
            Route("/api/v1/images/models", models),
            Route("/api/v1/images/models/{model_id:path}/endpoints", endpoints),
            Route("/api/v1/image-models", legacy),
        ]
    )


@pytest.fixture(scope="module")
def recorded() -> Iterator[ServerThread]:
    with serve(recording()) as server:
        yield server


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    return main(list(argv), stderr=err), err.getvalue()


def test_pull_writes_a_catalog_the_mock_loads(recorded: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "pulled.yaml"
    status, log = run("--base-url", recorded.base_url, "-o", str(out))
    assert status == 0, log
    lines = log.splitlines()
    assert "[1/3] gpt-image-2" in lines and "[2/3] bytedance/seedream-v5.0-pro" in lines
    assert lines[-1] == f"wrote 3 models to {out}"

    catalog = load_catalog(out.resolve())
    gpt = catalog.get("gpt-image-2")
    assert gpt.style == "typed" and gpt.sizes == ("1024x1024", "1024x768")
    assert (gpt.qualities, gpt.max_input_images, gpt.n_max) == (("low", "medium", "high"), 4, 4)
    assert gpt.price_usd == 0.06551 and gpt.price_by_resolution == {"1024x768": 0.0983}
    assert gpt.provider_slug == "openai"
    seedream = catalog.get("bytedance/seedream-v5.0-pro")
    assert seedream.style == "legacy" and dict(seedream.tiers) == {"1k": 1, "2k": 2}
    assert set(seedream.aspect_ratios) == {"1:1", "16:9", "9:16"}
    assert (seedream.max_input_images, seedream.input_max_bytes, seedream.price_usd) == (10, 10485760, 0.045)
    assert seedream.pixel_size("2k")[:2] == (2048, 2048)
    named = catalog.get("fixture/named-sizes")
    assert named.pixel_size("landscape_16_9")[:2] == (1024, 576)
    assert named.price_usd == 0.01 and named.tags == ("text-to-image",)

    # unknown fields are kept: the whole upstream records survive in the file
    import yaml

    raw = yaml.safe_load(out.read_text(encoding="utf-8"))
    by_id = {m["id"]: m for m in raw["models"]}
    kept = by_id["bytedance/seedream-v5.0-pro"]["upstream"]["catalog"]["supported_parameters"]["palette"]
    assert kept["type"] == "color_picker"
    assert by_id["gpt-image-2"]["upstream"]["endpoints"]["endpoints"][0]["provider_tag"] is None


@pytest.mark.anyio
async def test_the_mock_serves_a_pulled_catalog(recorded: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "pulled.yaml"
    assert run("--base-url", recorded.base_url, "-o", str(out))[0] == 0
    app = create_app(MockConfig(catalog_path=out))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock.test") as c:
        listed = (await c.get("/api/v1/images/models")).json()
        assert [m["id"] for m in listed["data"]] == [m["id"] for m in IMAGES_MODELS["data"]]
        r = await c.post(
            "/api/v1/images",
            json={"model": "bytedance/seedream-v5.0-pro", "prompt": "p", "resolution": "2k"},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert decode_image(r.json()["data"][0]["b64_json"]).size == (2048, 2048)
        assert r.json()["cost"] == pytest.approx(0.09)


def test_pull_from_the_mock_itself_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "mock.yaml"
    with serve(create_app(MockConfig())) as mock:
        status, log = run("--base-url", mock.base_url + "/", "-o", str(out))
    assert status == 0, log
    assert [m.id for m in load_catalog(out.resolve()).models] == [m.id for m in load_catalog().models]


def test_cli_hook(recorded: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "via-cli.yaml"
    assert cli_main(["catalog", "pull", "--base-url", recorded.base_url, "-o", str(out)]) == 0
    assert "wrote 3 models" in capsys.readouterr().err
    assert out.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("nano-gpt.com", "invalid base URL 'nano-gpt.com'"),
        ("ftp://example.test", "invalid base URL"),
        ("http://127.0.0.1:{closed_port}", "ConnectError"),
    ],
)
def test_bad_url_is_one_clear_line(tmp_path: Path, base_url: str, message: str) -> None:
    base_url = base_url.format(closed_port=_closed_port())  # chosen at run time: test ids stay stable
    out = tmp_path / "never.yaml"
    status, log = run("--base-url", base_url, "-o", str(out), "--timeout", "5")
    assert status == 2
    (line,) = log.splitlines()[-1:]
    assert line.startswith("nanogpt-mock catalog pull: ") and message in line
    assert "Traceback" not in log and not out.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": PlainTextResponse("<html>maintenance</html>")}, "the body is not JSON"),
        ({"models": JSONResponse({"models": ["a", "b"]})}, "expected a JSON object with a 'data' list"),
        ({"models": JSONResponse({"data": [{"name": "no id"}]})}, "must be an object with a string 'id'"),
        ({"models": JSONResponse({"error": "down"}, status_code=503)}, "HTTP 503, expected 200"),
        ({"legacy": JSONResponse([])}, "GET /api/v1/image-models: expected a JSON object"),
    ],
)
def test_unexpected_body_is_one_clear_line(tmp_path: Path, overrides: dict[str, Response], message: str) -> None:
    out = tmp_path / "never.yaml"
    with serve(recording(overrides)) as server:
        status, log = run("--base-url", server.base_url, "-o", str(out))
    assert status == 2
    assert log.splitlines()[-1].startswith("nanogpt-mock catalog pull: ")
    assert message in log.splitlines()[-1]
    assert not out.exists()
