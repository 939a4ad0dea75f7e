"""Property-based tests of the pipeline itself (no HTTP): valid requests work, anything else is refused
with a documented code, never a 500."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mockserver import Engine, MockRequest
from mockserver.catalog import load_catalog

from .conftest import checked_engine

ENGINE: Engine = checked_engine()
CATALOG = load_catalog()
HEADERS = {"authorization": "Bearer k", "content-type": "application/json"}


def call(path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = ENGINE.handle(MockRequest("POST", path, headers=headers or HEADERS, body=raw))
    return response.status, orjson.loads(response.body)


@st.composite
def valid_generation(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[int, int], int, str]:
    model = draw(st.sampled_from([m for m in CATALOG.models]))
    size_word = draw(st.sampled_from([*model.sizes, *model.tiers, "auto"]))
    w, h, _ = model.pixel_size(size_word)
    fmt = draw(st.sampled_from(model.output_formats))
    n = draw(st.integers(1, min(model.n_max, 2)))
    body = {
        "model": model.id,
        "prompt": draw(st.text(max_size=40)),
        "resolution": size_word,
        "nImages": n,
        "output_format": fmt,
        "seed": draw(st.integers(0, 2**32 - 1)),
    }
    if model.qualities:
        body["quality"] = draw(st.sampled_from(model.qualities))
    return body, (w, h), model.fixed_image_count or n, fmt


@settings(max_examples=25)
@given(valid_generation())
def test_any_valid_generation_returns_the_asked_images(case: tuple[dict[str, Any], tuple[int, int], int, str]) -> None:
    body, size, count, fmt = case
    status, payload = call("/api/v1/images", body)
    assert status == 200, payload
    assert len(payload["data"]) == count
    for item in payload["data"]:
        image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
        assert image.size == size
        assert image.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "model",
    "prompt",
    "n",
    "nImages",
    "size",
    "resolution",
    "aspect_ratio",
    "quality",
    "output_format",
    "seed",
    "input_references",
    "imageDataUrl",
    "imageDataUrls",
    "maskDataUrl",
    "stream",
    "provider",
    "response_format",
    "strength",
    "width",
    "height",
    "task_id",
]
PATHS = [
    "/api/v1/images",
    "/v1/images/generations",
    "/api/v1/images/generations",
    "/api/v1/images/edits",
    "/api/v1/images/edit",
    "/api/generate-image",
    "/api/check-midjourney-status",
]


@settings(max_examples=300)
@given(st.sampled_from(PATHS), st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
def test_arbitrary_bodies_never_crash(path: str, body: dict[str, Any]) -> None:
    """Every answer is a documented one (the checked engine validates it against the spec)."""
    headers = {**HEADERS, "x-api-key": "k"}
    status, payload = call(path, body, headers)
    assert status < 500, payload
    if status >= 400:
        assert "error" in payload


@settings(max_examples=100)
@given(
    st.sampled_from(PATHS),
    st.binary(max_size=200),
    st.sampled_from(["application/json", "multipart/form-data; boundary=x", "multipart/form-data", "text/plain", ""]),
)
def test_arbitrary_bytes_never_crash(path: str, raw: bytes, content_type: str) -> None:
    status, payload = call(path, raw, {"authorization": "Bearer k", "x-api-key": "k", "content-type": content_type})
    assert 400 <= status < 500, payload


HOSTILE_TEXT = st.text(
    st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00", "\u2028", "é"])), max_size=120
) | st.sampled_from(["\ud800" * 90, "x" * 5000 + "\ud800", "\x00" * 100])
STRING_FIELDS = [
    "model", "prompt", "size", "resolution", "aspect_ratio", "quality", "output_format", "response_format",
    "task_id", "imageDataUrl", "maskDataUrl", "user", "style",
]  # fmt: skip
ADMIN_BODIES: list[tuple[str, str, Any]] = [
    ("PUT", "/_mock/faults", lambda t: {"latency": {t: {"base_ms": 1}}, "error_codes": [t]}),
    ("POST", "/_mock/faults/queue", lambda t: {"operation_id": t, "code": t, "path": t}),
    ("PUT", "/_mock/balances", lambda t: {"balance": 1}),
    ("POST", "/_mock/clock", lambda t: {"set": len(t) * 1e300}),
]


@settings(max_examples=200)
@given(
    st.sampled_from(PATHS),
    st.dictionaries(st.sampled_from(STRING_FIELDS), HOSTILE_TEXT, min_size=1, max_size=4),
    st.booleans(),
)
def test_hostile_text_in_any_string_field_gets_a_documented_4xx(path: str, body: dict[str, Any], refs: bool) -> None:
    """Unpaired surrogates, NUL and huge strings in every string field: a documented answer below 500."""
    if refs:
        body = {**body, "input_references": list(body.values())[:2]}
    raw = json.dumps(body).encode()  # "\ud800" travels as the escape JSON allows
    headers = {**HEADERS, "x-api-key": "k"}
    response = ENGINE.handle(MockRequest("POST", path, headers=headers, body=raw))
    assert response.status < 500, response.body[:300]
    orjson.loads(response.body)


@settings(max_examples=100)
@given(st.sampled_from(range(len(ADMIN_BODIES))), HOSTILE_TEXT)
def test_hostile_text_in_admin_values_gets_a_documented_4xx(which: int, text: str) -> None:
    method, path, make = ADMIN_BODIES[which]
    headers = {"content-type": "application/json", "x-mock-key": "k"}
    response = ENGINE.handle(MockRequest(method, path, headers=headers, body=json.dumps(make(text)).encode()))
    assert response.status < 500, response.body[:300]
    ENGINE.reset()
    assert ENGINE.handle(MockRequest("GET", "/_mock/clock")).status == 200
