"""Every operation, every documented answer: the mock's responses validate against the spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mockserver import Engine, MockRequest
from mockserver.spec import load_spec

from .conftest import KEY, checked_engine, data_url, png_bytes

SPEC = load_spec()
IMAGE = data_url(png_bytes(32, 32))
VALID: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "imagesGenerate": ("POST", "/api/v1/images", {"model": "gpt-image-2", "prompt": "x", "input_references": [IMAGE]}),
    "imagesListModels": ("GET", "/api/v1/images/models", None),
    "imagesListModelEndpoints": ("GET", "/api/v1/images/models/openai/gpt-image-2.5/flare/edit/endpoints", None),
    "openaiGenerateImage": ("POST", "/v1/images/generations", {"prompt": "x", "response_format": "url"}),
    "openaiGenerateImageApi": ("POST", "/api/v1/images/generations", {"prompt": "x", "n": 2}),
    "openaiEditImage": ("POST", "/api/v1/images/edits", {"prompt": "x", "imageDataUrl": IMAGE}),
    "openaiEditImageAlias": ("POST", "/api/v1/images/edit", {"prompt": "x", "imageDataUrls": [IMAGE, IMAGE]}),
    "legacyListImageModels": ("GET", "/api/v1/image-models", None),
    "legacyGenerateImage": ("POST", "/api/generate-image", {"model": "recraft-v3", "prompt": "x"}),
    "checkMidjourneyStatus": ("POST", "/api/check-midjourney-status", {"task_id": "1744449927914205"}),
    "legacyListModels": ("GET", "/api/models", None),
    "legacyListModelsImage": ("GET", "/api/models/image", None),
    "nsfwClassifyImage": ("POST", "/api/nsfw/image", {"image_urls": ["https://example.com/a.png", IMAGE]}),
    "listModerationModels": ("GET", "/api/v1/moderation-models", None),
    "x402ListEndpoints": ("GET", "/api/v1/x402/endpoints", None),
    "x402PaymentStatus": ("GET", "/api/x402/status/{paymentId}", None),  # a fresh quote's ID, see quoted()
    "x402CompletePayment": ("POST", "/api/x402/complete/{paymentId}", None),
}


def request(operation_id: str, prefer: str | None = None) -> MockRequest:
    import json

    method, path, body = VALID[operation_id]
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY, "content-type": "application/json"}
    if prefer:
        headers["prefer"] = prefer
    return MockRequest(method, path, headers=headers, body=json.dumps(body).encode() if body is not None else b"")


def quoted(engine: Engine, req: MockRequest) -> MockRequest:
    """``req`` aimed at a payment that exists: an accountless quote taken on ``engine`` first (and paid)."""
    if "{paymentId}" not in req.path:
        return req
    quote = engine.handle(
        MockRequest(
            "POST",
            "/api/v1/images/generations",
            headers={"x-x402": "true", "content-type": "application/json"},
            body=b'{"prompt": "x"}',
        )
    )
    payment_id = json.loads(quote.body)["payment"]["paymentId"]
    headers = {**req.headers, "x-payment": "proof"}
    return MockRequest(req.method, req.path.replace("{paymentId}", payment_id), headers=headers, body=req.body)


def test_every_operation_is_covered() -> None:
    assert set(VALID) == set(SPEC.by_id)


@pytest.mark.parametrize("operation_id", sorted(VALID))
def test_success_conforms(operation_id: str) -> None:
    engine = checked_engine()
    response = engine.handle(quoted(engine, request(operation_id)))  # the checked engine validates the body
    assert response.status == SPEC.by_id[operation_id].success_status
    assert response.operation_id == operation_id


@pytest.mark.parametrize(
    ("operation_id", "code"),
    sorted((op.operation_id, code) for op in SPEC.operations for code in op.errors),
)
def test_every_documented_error_conforms(operation_id: str, code: str) -> None:
    template = SPEC.by_id[operation_id].errors[code]
    response = checked_engine().handle(request(operation_id, prefer=f"code={code}"))
    assert response.status == template.status
    assert response.error_code == code
    if template.status == 429:
        assert int(response.headers["retry-after"]) >= 1
