"""ASGI middlewares that each introduce one drift into the faithful mock.

Each variant names the finding the contract run must report for it (check + where).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from contracts.target import MOCK_KEY, embedded_mock_app

GENERATING_PATHS = (
    "/api/v1/images",
    "/v1/images/generations",
    "/api/v1/images/generations",
    "/api/v1/images/edits",
    "/api/v1/images/edit",
    "/api/generate-image",
)
RequestRewrite = Callable[[str, dict[str, Any]], dict[str, Any]]
ResponseRewrite = Callable[[str, int, Any], tuple[int, Any]]


class Rewrite:
    """Rewrite JSON request bodies and/or responses of the wrapped app (bodies are small here)."""

    def __init__(
        self,
        app: Any,
        *,
        request: RequestRewrite | None = None,
        response: ResponseRewrite | None = None,
        raw_response: Callable[[str, int, bytes], tuple[int, bytes]] | None = None,
    ) -> None:
        self.app, self.request, self.response, self.raw_response = app, request, response, raw_response

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        if self.request and headers.get(b"content-type", b"").startswith(b"application/json"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            raw = b"".join(chunks)
            try:
                body = json.loads(raw)
                if isinstance(body, dict):
                    raw = json.dumps(self.request(path, body)).encode()
            except ValueError:
                pass
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope["headers"].append((b"content-length", str(len(raw)).encode()))
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}

            receive = replay
        if not (self.response or self.raw_response):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body_chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body_chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, raw = int(start["status"]), b"".join(body_chunks)
            if self.raw_response:
                status, raw = self.raw_response(path, status, raw)
            if self.response:
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                if parsed is not None:
                    status, new = self.response(path, status, parsed)
                    raw = json.dumps(new).encode()
            out_headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            out_headers.append((b"content-length", str(len(raw)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        await self.app(scope, receive, capture)


def faithful() -> Any:
    return embedded_mock_app(MOCK_KEY)


def _on_success(fn: Callable[[dict[str, Any]], None]) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if path in GENERATING_PATHS and status == 200 and isinstance(body, dict):
            fn(body)
        return status, body

    return rewrite


def _images(fn: Callable[[bytes], bytes]) -> ResponseRewrite:
    def change(body: dict[str, Any]) -> None:
        for item in body.get("data") or []:
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                item["b64_json"] = base64.b64encode(fn(base64.b64decode(item["b64_json"]))).decode()

    return _on_success(change)


def _resized(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format or "PNG"
        out = io.BytesIO()
        image.convert("RGB").resize((64, 48)).save(out, format=fmt)
    return out.getvalue()


def _as_jpeg(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            return data
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG")
    return out.getvalue()


def _rename(body: dict[str, Any]) -> None:
    if "remainingBalance" in body:
        body["remaining_balance"] = body.pop("remainingBalance")


def _cost_as_string(body: dict[str, Any]) -> None:
    if "cost" in body:
        body["cost"] = str(body["cost"])


def _frozen_balance(body: dict[str, Any]) -> None:
    if "remainingBalance" in body:
        body["remainingBalance"] = 100.0


def _error_code(old: str, new: str, only: str | None = None) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if (only is None or path == only) and isinstance(body, dict):
            inner = body.get("error")
            if isinstance(inner, dict) and inner.get("code") == old:
                inner["code"] = new
                if body.get("code") == old:
                    body["code"] = new
        return status, body

    return rewrite


def _status(code: str, new_status: int) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("code") == code:
            return new_status, body
        return status, body

    return rewrite


def _legacy_envelope(path: str, status: int, body: Any) -> tuple[int, Any]:
    if (
        path == "/api/generate-image"
        and status >= 400
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
    ):
        return status, {"error": {"message": body["error"], "type": "invalid_request_error", "code": body.get("code")}}
    return status, body


def _drop_model(model_id: str) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if path in ("/api/v1/images/models", "/api/v1/image-models") and status == 200 and isinstance(body, dict):
            body["data"] = [m for m in body.get("data", []) if m.get("id") != model_id]
            if isinstance(body.get("meta"), dict):
                body["meta"]["count"] = len(body["data"])
        return status, body

    return rewrite


def _double_price(model_id: str) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if path == f"/api/v1/images/models/{model_id}/endpoints" and status == 200 and isinstance(body, dict):
            for endpoint in body.get("endpoints", []):
                for row in endpoint.get("pricing", []):
                    row["cost_usd"] = round(row["cost_usd"] * 2, 6)
        return status, body

    return rewrite


def _drop_parameter(model_id: str, name: str) -> ResponseRewrite:
    def rewrite(path: str, status: int, body: Any) -> tuple[int, Any]:
        if path == "/api/v1/images/models" and status == 200 and isinstance(body, dict):
            for model in body.get("data", []):
                if model.get("id") == model_id:
                    model.get("supported_parameters", {}).pop(name, None)
        return status, body

    return rewrite


def _no_seed(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path == "/api/v1/images":
        body.pop("seed", None)
    return body


def _no_output_format(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path == "/api/v1/images":
        body.pop("output_format", None)
    return body


def _n_wins(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path == "/api/v1/images" and "n" in body and "nImages" in body:
        body.pop("nImages")
    return body


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _files_gone(path: str, status: int, raw: bytes) -> tuple[int, bytes]:
    if path.startswith("/_mock/files/"):
        return 404, b'{"error": {"message": "gone", "type": "not_found_error", "code": "file_not_found"}}'
    return status, raw


@dataclass(frozen=True)
class Variant:
    """One deliberate drift and the finding that must name it."""

    name: str
    build: Callable[[], Any]
    check: str
    operation_id: str | None = None
    path: str | None = None
    code: str | None = None
    model: str | None = None
    drift: bool = False  # found by the snapshot diff (else by the contract run)


def _wrap(**kwargs: Any) -> Callable[[], Any]:
    return lambda: Rewrite(faithful(), **kwargs)


VARIANTS: list[Variant] = [
    # a field renamed: the contract run and the snapshot both name it
    Variant(
        "field renamed (contract)",
        _wrap(response=_on_success(_rename)),
        "balance_drops_by_cost",
        "imagesGenerate",
        "$.remainingBalance",
    ),
    Variant(
        "field renamed (drift: removed)",
        _wrap(response=_on_success(_rename)),
        "field_removed",
        "imagesGenerate",
        "$.remainingBalance",
        drift=True,
    ),
    Variant(
        "field renamed (drift: added)",
        _wrap(response=_on_success(_rename)),
        "field_added",
        "imagesGenerate",
        "$.remaining_balance",
        drift=True,
    ),
    Variant(
        "type changed (contract)",
        _wrap(response=_on_success(_cost_as_string)),
        "response_schema_conformance",
        "imagesGenerate",
        "$.cost",
    ),
    Variant(
        "type changed (drift)",
        _wrap(response=_on_success(_cost_as_string)),
        "field_retyped",
        "imagesGenerate",
        "$.cost",
        drift=True,
    ),
    Variant(
        "error code changed (contract)",
        _wrap(response=_error_code("model_not_found", "unknown_model", "/api/v1/images")),
        "error_code_documented",
        "imagesGenerate",
        code="unknown_model",
    ),
    Variant(
        "error code changed (negative suite)",
        _wrap(response=_error_code("model_not_found", "unknown_model", "/api/v1/images")),
        "negative_expected_code",
        "imagesGenerate",
        code="model_not_found",
    ),
    Variant(
        "error code changed (drift)",
        _wrap(response=_error_code("model_not_found", "unknown_model", "/api/v1/images")),
        "error_code_removed",
        "imagesGenerate",
        code="model_not_found",
        drift=True,
    ),
    Variant(
        "error status changed (contract)",
        _wrap(response=_status("missing_model", 422)),
        "error_status",
        "imagesGenerate",
        code="missing_model",
    ),
    Variant(
        "error status changed (drift)",
        _wrap(response=_status("missing_model", 422)),
        "error_status_changed",
        "imagesGenerate",
        code="missing_model",
        drift=True,
    ),
    Variant(
        "error envelope changed", _wrap(response=_legacy_envelope), "error_envelope", "legacyGenerateImage", "$.error"
    ),
    Variant("broken image", _wrap(response=_images(_truncate)), "image_decodes"),
    Variant("wrong pixel size", _wrap(response=_images(_resized)), "image_size"),
    Variant("wrong image format", _wrap(response=_images(_as_jpeg)), "image_format"),
    Variant("URL does not download", _wrap(raw_response=_files_gone), "url_downloads", "imagesGenerate"),
    Variant("seed not honoured", _wrap(request=_no_seed), "seed_reproducible", "imagesGenerate", "$.data"),
    Variant("output_format ignored", _wrap(request=_no_output_format), "image_format", "imagesGenerate", "$.data[0]"),
    Variant("nImages ignored when n is sent", _wrap(request=_n_wins), "nimages_beats_n", "imagesGenerate", "$.data"),
    Variant(
        "balance does not drop",
        _wrap(response=_on_success(_frozen_balance)),
        "balance_drops_by_cost",
        path="$.remainingBalance",
    ),
    Variant("missing model", _wrap(response=_drop_model("flux-dev")), "model_removed", model="flux-dev", drift=True),
    Variant("price changed", _wrap(response=_double_price("hidream")), "price_changed", model="hidream", drift=True),
    Variant(
        "supported parameter dropped",
        _wrap(response=_drop_parameter("gpt-image-2", "quality")),
        "model_parameter_changed",
        path="$.supported_parameters.quality",
        model="gpt-image-2",
        drift=True,
    ),
]
