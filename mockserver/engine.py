"""The mock's core: route -> authenticate -> validate -> choose the response -> render it.

Plain functions and one ``Engine`` object holding the explicit state; no Starlette here, so
every step can be driven and tested without HTTP (``Engine.handle(MockRequest)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import orjson

from .admin import ADMIN_PREFIX, AdminApi
from .auth import authenticate
from .catalog import Catalog, Model, load_catalog
from .controls import Directives, FaultProfile, Faults, Journal, key_id, parse_prefer, seconds_to_midnight
from .errors import ErrorTemplate, MockError, SpecError, render_error
from .messages import MockRequest, MockResponse, json_response, plain_error
from .render import MEDIA_TYPES, InvalidImage, OutputFormat, Renderer, RenderSpec, image_info
from .routing import MethodNotAllowed, NoRoute, RouteMatch, Router
from .signing import FILES_PREFIX, SignatureError, UrlSigner
from .spec import Operation, Spec, load_spec
from .state import DEFAULT_BALANCE, Clock, Ledger
from .validation import (
    ParsedBody,
    UploadedFile,
    as_list,
    form_view,
    header_view,
    parse_body,
    query_view,
    schema_error,
)

log = logging.getLogger("mockserver")

OPENAI_MAX_IMAGE_BYTES = 4 * 1024 * 1024  # "Uploads should be 4 MB or smaller after encoding"
DEFAULT_EDIT_MODEL = "gpt-image-2"  # the docs' compatibility choice for edits (with or without a mask)
_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+)?(;[a-z0-9=.+-]+)*;base64,", re.IGNORECASE)
_IMAGE_ALIASES = ("imageDataUrl", "imageDataUrls", "image_url", "images")


@dataclass(frozen=True)
class MockConfig:
    """Settings of one mock instance; cli.py maps its flags and environment variables onto these fields."""

    api_keys: frozenset[str] = frozenset()  # empty: any non-empty key is accepted
    balance: Decimal = DEFAULT_BALANCE
    catalog_path: Path | None = None
    spec_path: Path | None = None
    url_ttl: int = 3600
    signing_secret: str = "nanogpt-mock-signing-secret"
    presign_failure: bool = False
    max_body_bytes: int = 48 * 1024 * 1024
    max_image_bytes: int = OPENAI_MAX_IMAGE_BYTES
    public_base_url: str | None = None
    render_cache_bytes: int = 256 * 1024 * 1024
    fault_profile: FaultProfile | None = None
    admin_token: str | None = None


@dataclass(frozen=True, slots=True)
class SourceImage:
    """An input image: real bytes, or a reference the mock cannot fetch (rendered stand-in)."""

    data: bytes


@dataclass
class Context:
    """What one request's handler needs: the match, the caller, the parsed input."""

    request: MockRequest
    operation: Operation
    params: Mapping[str, str]
    key: str | None = None
    body: ParsedBody | None = None
    query: dict[str, Any] = field(default_factory=dict)
    directives: Directives = field(default_factory=Directives)
    fault: str | None = None
    delay_ms: float = 0.0
    cost: Decimal | None = None


class Engine:
    """One mock instance: spec, catalog, renderer and state, behind ``handle``."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        spec: Spec | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.config = config or MockConfig()
        self.spec = spec or load_spec(self.config.spec_path)
        self.catalog = catalog or load_catalog(self.config.catalog_path)
        self.router = Router(self.spec.operations)
        self.renderer = Renderer(cache_bytes=self.config.render_cache_bytes)
        self.signer = UrlSigner(self.config.signing_secret)
        self.clock = Clock()
        self.ledger = Ledger(self.config.balance)
        self.faults = Faults(self.config.fault_profile)
        self.journal = Journal()
        self.admin = AdminApi(self)
        self._stored: OrderedDict[str, bytes] = OrderedDict()  # edit outputs served by URL
        self._stored_bytes = 0
        self._store_lock = threading.Lock()
        self._handlers: dict[str, Callable[[Context], MockResponse]] = {
            "imagesGenerate": self._images_generate,
            "openaiGenerateImage": self._openai_generate,
            "openaiGenerateImageApi": self._openai_generate,
            "openaiEditImage": self._openai_edit,
            "openaiEditImageAlias": self._openai_edit,
            "legacyGenerateImage": self._legacy_generate,
            "imagesListModels": lambda ctx: MockResponse(200, self._catalog_bodies["models"]),
            "legacyListImageModels": self._legacy_models,
            "imagesListModelEndpoints": self._model_endpoints,
            "checkMidjourneyStatus": self._midjourney_status,
        }
        missing = [op.operation_id for op in self.spec.operations if op.operation_id not in self._handlers]
        if missing:
            raise SpecError(f"the spec has operations the mock cannot answer: {missing}")
        # catalog bodies never change while the instance lives: encode them once
        self._catalog_bodies: dict[str, bytes] = {
            "models": orjson.dumps(self.catalog.images_models_body()),
            "legacy_detailed": orjson.dumps(self.catalog.legacy_models_body(True)),
            "legacy_basic": orjson.dumps(self.catalog.legacy_models_body(False)),
        }

    # -- state -------------------------------------------------------------------------------
    def accepts_key(self, key: str) -> bool:
        return bool(key) and (not self.config.api_keys or key in self.config.api_keys)

    def reset(self) -> None:
        """Back to the state of a fresh instance (balances, clock, faults, journal, files, caches)."""
        self.ledger.reset()
        self.clock.reset()
        self.faults.reset()
        self.journal.clear()
        with self._store_lock:
            self._stored.clear()
            self._stored_bytes = 0
        self.renderer.clear()

    # -- the pipeline -------------------------------------------------------------------------
    def handle(self, request: MockRequest) -> MockResponse:
        if request.path.startswith(ADMIN_PREFIX) and not request.path.startswith(FILES_PREFIX):
            return self.admin.handle(request)
        started = time.perf_counter()
        ctx: Context | None = None
        if request.path.startswith(FILES_PREFIX):
            response = self.serve_file(request)
        else:
            match = self.router.route(request.method, request.path)
            if isinstance(match, RouteMatch):
                ctx = Context(request, match.operation, match.params)
                response = self._run(ctx)
            else:
                response = self._no_route(request, match)
        if request.method.upper() == "HEAD":
            response.body = b""
        self._record(request, response, ctx, started)
        return response

    def _no_route(self, request: MockRequest, match: NoRoute | MethodNotAllowed) -> MockResponse:
        if isinstance(match, NoRoute):
            message = f"No route for {request.method} {request.path}."
            return json_response(404, plain_error(message, "not_found_error", "not_found"), error_code="not_found")
        return json_response(
            405,
            plain_error(
                f"Method {request.method} is not allowed on {request.path}. Allowed: {', '.join(match.allowed)}.",
                "invalid_request_error",
                "method_not_allowed",
            ),
            {"allow": ", ".join(match.allowed)},
            error_code="method_not_allowed",
        )

    def _run(self, ctx: Context) -> MockResponse:
        """The pipeline of one NanoGPT operation, with the testing controls at their fixed points."""
        operation = ctx.operation
        try:
            ctx.directives = parse_prefer(ctx.request.headers.get("prefer"), operation)
            if ctx.directives.empty:
                ctx.directives = self.faults.take(operation, ctx.request.path)
                ctx.fault = None if ctx.directives.empty else "queue"
            else:
                ctx.fault = "prefer"
            if ctx.directives.code is not None:
                raise self._forced(operation, ctx.directives.code)
            response = self.dispatch(ctx)
        except MockError as error:
            response = self.error_response(operation, error)
        response.operation_id = operation.operation_id
        if ctx.directives.latency_ms is not None:
            ctx.delay_ms = ctx.directives.latency_ms
        response.delay = ctx.delay_ms / 1000.0
        return response

    def _forced(self, operation: Operation, code: str) -> MockError:
        """A documented error chosen by a control: the example's own message and parameter."""
        template = operation.errors[code]
        inner = template.body.get("error")
        param = inner.get(template.param_key) if isinstance(inner, dict) and template.param_key else None
        headers = {}
        if "retry-after" in template.headers:
            wait = seconds_to_midnight(self.clock.now()) if code.startswith("daily_") else 1
            headers["retry-after"] = str(wait)
        return MockError(code, None, param, headers=headers)

    def _record(self, request: MockRequest, response: MockResponse, ctx: Context | None, started: float) -> None:
        model = ctx.body.data.get("model") if ctx is not None and ctx.body is not None else None
        self.journal.record(
            self.clock.now(),
            request.method.upper(),
            request.path,
            "&".join(f"{k}={v}" for k, v in request.query),
            response.operation_id,
            key_id(ctx.key) if ctx else None,
            model if isinstance(model, str) else None,
            response.status,
            response.error_code,
            ctx.cost if ctx else None,
            ctx.fault if ctx else None,
            response.delay * 1000,
            (time.perf_counter() - started) * 1000,
        )

    def reject(self, method: str, path: str, error: MockError) -> MockResponse:
        """Answer ``error`` for a request the outer layer refused before it reached ``handle``."""
        match = self.router.route(method, path) if not path.startswith(ADMIN_PREFIX) else NoRoute()
        operation = match.operation if isinstance(match, RouteMatch) else None
        response = self.error_response(operation, error)
        response.operation_id = operation.operation_id if operation else None
        self._record(MockRequest(method, path), response, None, time.perf_counter())
        return response

    def dispatch(self, ctx: Context) -> MockResponse:
        """authenticate -> limits -> validate -> the operation's handler."""
        request, operation = ctx.request, ctx.operation
        x402 = request.headers.get("x-x402", "").lower() == "true" and "x402_payment_required" in operation.errors
        ctx.key = authenticate(operation, request.headers, self.accepts_key, allow_anonymous=x402)
        self.faults.admit(ctx.key, self.clock.now())
        random_code = self.faults.random_error(operation)
        if random_code is not None:
            ctx.fault = "profile"
            raise self._forced(operation, random_code)
        if operation.header_validator is not None:
            headers = header_view(operation, request.headers)
            error = schema_error(operation.header_validator, headers) if headers or operation.headers_required else None
            if error:
                raise error
        if operation.query:
            ctx.query = query_view(operation, request.query)
            error = schema_error(operation.query_validator, ctx.query, code_for_param={})
            if error:
                raise error
        if operation.bodies and request.method.upper() != "HEAD":
            ctx.body = parse_body(operation, request.headers.get("content-type"), request.body)
        return self._handlers[operation.operation_id](ctx)

    def error_response(self, operation: Operation | None, error: MockError) -> MockResponse:
        """Render ``error`` in the envelope and status the spec documents for it on ``operation``."""
        template = operation.error(error.code) if operation else None
        if template is None:
            log.warning("code %s is not documented for %s", error.code, operation.operation_id if operation else "-")
            template = ErrorTemplate(
                error.code,
                _FALLBACK_STATUS.get(error.code, 400),
                plain_error(error.message or error.code, "invalid_request_error", error.code),
                "param",
            )
        body = render_error(template, error)
        headers = {k.lower(): v for k, v in error.headers.items()}
        if "retry-after" in template.headers and "retry-after" not in headers:
            headers["retry-after"] = "1"
        return json_response(template.status, body, headers, error_code=error.code)

    # -- validation helpers ------------------------------------------------------------------
    def _validated(
        self,
        ctx: Context,
        *,
        code_for_param: Mapping[str, str] | None = None,
        required_code: str = "missing_required_parameter",
    ) -> dict[str, Any]:
        assert ctx.body is not None
        media = ctx.operation.bodies[ctx.body.media_type]
        instance = (
            form_view(media, ctx.body) if ctx.body.files or media.media_type.startswith("multipart/") else ctx.body.data
        )
        error = schema_error(media.validator, instance, required_code=required_code, code_for_param=code_for_param)
        if error:
            raise error
        return instance if isinstance(instance, dict) else {}

    # -- handlers ------------------------------------------------------------------------------
    def _images_generate(self, ctx: Context) -> MockResponse:
        """POST /api/v1/images: the documented rules first, in the documented order."""
        assert ctx.body is not None
        data = ctx.body.data
        if not isinstance(data.get("model"), str) or not data.get("model"):
            raise MockError("missing_model", "model is required for /api/v1/images.", "model")
        if data.get("stream") is True:
            raise MockError("unsupported_stream", None, "stream")
        provider = data.get("provider")
        if provider is not None and provider != {}:
            raise MockError("unsupported_provider_options", None, "provider")
        if "input_references" in data and any(alias in data for alias in _IMAGE_ALIASES):
            raise MockError("conflicting_image_inputs", None, "input_references")
        body = self._validated(
            ctx, code_for_param={"input_references": "invalid_input_references", "model": "missing_model"}
        )
        model = self.catalog.get(body["model"])
        references = as_list(body.get("input_references")) or [
            ref for alias in _IMAGE_ALIASES for ref in as_list(body.get(alias))
        ]
        sources = [self._reference(ref, model, "input_references") for ref in references]
        return self._generate(
            ctx,
            model,
            body,
            sources,
            image_param="input_references",
            n_param="nImages" if "nImages" in body else "n",  # documented: nImages beats n
            size_param="resolution" if "resolution" in body else "size",
        )

    def _openai_generate(self, ctx: Context) -> MockResponse:
        body = self._validated(ctx)
        model = self.catalog.get(str(body.get("model") or "hidream"))
        sources, mask = self._data_url_inputs(body)
        return self._generate(ctx, model, body, sources, mask, image_param="imageDataUrl")

    def _openai_edit(self, ctx: Context) -> MockResponse:
        assert ctx.body is not None
        parsed = ctx.body
        multipart = parsed.media_type.startswith("multipart/")
        names = _EDIT_IMAGE_PARTS if multipart else ("imageDataUrl", "imageDataUrls")
        if not any(parsed.files.get(n) or parsed.data.get(n) for n in names):  # the documented code wins
            raise MockError("missing_image_input", f"image is required. Send {' or '.join(names)}.", "image")
        body = self._validated(ctx)
        limit = self.config.max_image_bytes
        if multipart:
            sources = [self._upload(u, n, limit) for n in _EDIT_IMAGE_PARTS for u in parsed.files.get(n, ())]
            sources += [self._reference(v, None, n) for n in _EDIT_IMAGE_PARTS for v in as_list(parsed.data.get(n))]
            mask = self._upload(parsed.files["mask"][0], "mask", limit) if parsed.files.get("mask") else None
        else:
            sources, mask = self._data_url_inputs(body)
        model = self.catalog.get(str(body.get("model") or DEFAULT_EDIT_MODEL))
        return self._generate(
            ctx, model, body, sources, mask, image_param="image" if multipart else "imageDataUrl", edit=True
        )

    def _data_url_inputs(self, body: Mapping[str, Any]) -> tuple[list[SourceImage], SourceImage | None]:
        """``imageDataUrl`` / ``imageDataUrls`` / ``maskDataUrl`` of a body that passed the schema."""
        limit = self.config.max_image_bytes
        urls = [*as_list(body.get("imageDataUrl")), *as_list(body.get("imageDataUrls"))]
        sources = [self._data_url(u, "imageDataUrl", limit) for u in urls]
        mask = self._data_url(body["maskDataUrl"], "maskDataUrl", limit) if body.get("maskDataUrl") else None
        return sources, mask

    def _legacy_generate(self, ctx: Context) -> MockResponse:
        body = self._validated(ctx)
        model = self.catalog.get(str(body["model"]))
        sources, _ = self._data_url_inputs(body)
        size = body.get("resolution")
        size_param = "resolution"
        if size is None and ("width" in body or "height" in body):
            size = f"{body.get('width', 1024)}x{body.get('height', 1024)}"
            size_param = "width"
        return self._generate(
            ctx, model, body, sources, image_param="imageDataUrl", n_param="nImages", size_param=size_param, size=size
        )

    def _legacy_models(self, ctx: Context) -> MockResponse:
        detailed = ctx.query.get("detailed", True)
        body = self._catalog_bodies["legacy_detailed" if detailed else "legacy_basic"]
        return MockResponse(200, body, headers={"cache-control": "public, max-age=60"})

    def _model_endpoints(self, ctx: Context) -> MockResponse:
        model_id = ctx.params["modelId"]
        if model_id not in self.catalog.by_id:
            raise MockError("model_not_found", f"Model '{model_id}' not found.", "modelId")
        return json_response(200, self.catalog.endpoints_body(model_id))

    def _midjourney_status(self, ctx: Context) -> MockResponse:
        body = self._validated(ctx)
        task_id = str(body["task_id"])
        seed = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big")
        width, height, _ = self.catalog.get("midjourney").pixel_size(None)
        spec = RenderSpec("midjourney", _label(f"task {task_id}"), width, height, seed, 0, "png")
        url = self._signed_url(ctx.request, spec, None)
        return json_response(
            200, {"status": "SUCCESS", "task_id": task_id, "progress": "100%", "imageUrl": url, "failReason": None}
        )

    # -- the shared generation path -------------------------------------------------------------
    def _generate(
        self,
        ctx: Context,
        model: Model,
        body: Mapping[str, Any],
        sources: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        image_param: str,
        n_param: str = "n",
        size_param: str = "size",
        size: str | None = None,
        edit: bool = False,
    ) -> MockResponse:
        """The generation path every route shares: capabilities, size, price, charge, render."""
        n = int(body.get(n_param, 1))
        size = size if size is not None else body.get(size_param)
        if sources and model.max_input_images == 0:
            raise MockError(
                "image_input_not_supported",
                f"Model '{model.id}' does not accept image input; it is text-to-image only.",
                image_param,
            )
        if len(sources) > model.max_input_images:
            raise MockError(
                "invalid_parameter_value",
                f"Model '{model.id}' accepts at most {model.max_input_images} input images, got {len(sources)}.",
                image_param,
            )
        if mask is not None and not model.inpainting:
            raise MockError(
                "image_input_not_supported",
                f"Model '{model.id}' does not support masks (inpainting).",
                "mask" if edit else "maskDataUrl",
            )
        aspect = body.get("aspect_ratio")
        width, height, tier = model.pixel_size(
            size if size is None else str(size), None if aspect is None else str(aspect), param=size_param
        )
        keep_source_size = edit and size is None and bool(sources)
        model.check_quality(None if body.get("quality") is None else str(body.get("quality")))
        output_format = str(body.get("output_format") or "png").lower()
        output_format = "jpeg" if output_format == "jpg" else output_format
        if output_format not in MEDIA_TYPES:
            raise MockError(
                "invalid_parameter_value",
                f"output_format '{output_format}' is not supported. Use png, jpeg or webp.",
                "output_format",
            )
        model.check_output_format(output_format)
        count = model.image_count(n, n_param)
        unit_price = model.price(width, height, tier)
        cost = unit_price * count
        if ctx.key is None:  # authenticate() let an x402 quote request through
            raise self._x402_quote(ctx, cost)
        seed = body.get("seed")
        seed = int(seed) % 2**32 if isinstance(seed, int) and model.seed else secrets.randbelow(2**32)
        now = self.clock.now()
        self.faults.check_spend(ctx.key, cost, now)
        try:
            remaining = self.ledger.charge(ctx.key, cost)
        except MockError:
            self.faults.refund_spend(ctx.key, cost, now)
            raise
        ctx.cost = cost
        ctx.delay_ms = self.faults.latency_ms(model.id, width * height * count / 1e6)
        try:
            prompt = _label(str(body.get("prompt", "")))
            want_url = body.get("response_format", "b64_json") == "url" and not (
                self.config.presign_failure or ctx.directives.presign_fail or self.faults.presign_fails()
            )
            data: list[dict[str, Any]] = []
            for index in range(count):
                spec = RenderSpec(model.id, prompt, width, height, seed, index, output_format)  # type: ignore[arg-type]
                if sources:
                    image = self.renderer.render_edit(
                        spec,
                        sources[index % len(sources)].data,
                        None if mask is None else mask.data,
                        keep_source_size=keep_source_size,
                    )
                    stored = self._store(image) if want_url else None
                    data.append(
                        {"url": self._signed_url(ctx.request, spec, stored)}
                        if want_url
                        else {"b64_json": base64.b64encode(image).decode()}
                    )
                elif want_url:
                    data.append({"url": self._signed_url(ctx.request, spec, None)})
                else:
                    # already-encoded JSON: orjson copies it as is instead of scanning 16+ KB of text
                    data.append({"b64_json": orjson.Fragment(self.renderer.render_b64_json(spec))})
        except InvalidImage as exc:
            self.ledger.refund(ctx.key, cost)
            self.faults.refund_spend(ctx.key, cost, now)
            ctx.cost = None
            raise MockError(
                "invalid_parameter_value", f"An input image could not be decoded: {exc}.", image_param
            ) from None
        except BaseException:
            self.ledger.refund(ctx.key, cost)
            self.faults.refund_spend(ctx.key, cost, now)
            ctx.cost = None
            raise
        return json_response(
            ctx.operation.success_status,
            {
                "created": int(self.clock.now()),
                "data": data,
                "cost": float(cost),
                "paymentSource": "USD",
                "remainingBalance": float(remaining),
            },
        )

    def _x402_quote(self, ctx: Context, cost: Decimal) -> MockError:
        template = ctx.operation.errors["x402_payment_required"]
        payment = dict(template.body.get("payment") or {})
        request_hash = hashlib.sha256(ctx.request.body).hexdigest()
        payment_id = "pay_" + request_hash[:24]
        base = self.config.public_base_url or ctx.request.base_url
        expires = datetime.fromtimestamp(self.clock.now() + 900, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        payment.update(
            {
                "paymentId": payment_id,
                "requestHash": f"sha256:{request_hash}",
                "expiresAt": expires,
                "amountUsd": f"{cost:.4f}",
                "statusUrl": f"{base}/api/x402/status/{payment_id}",
                "completeUrl": f"{base}/api/x402/complete/{payment_id}",
            }
        )
        return MockError(
            "x402_payment_required", "Payment required to complete this request.", extra={"payment": payment}
        )

    # -- image inputs ------------------------------------------------------------------------
    def _data_url(self, value: Any, param: str, limit: int) -> SourceImage:
        if not isinstance(value, str) or not _DATA_URL.match(value):
            raise MockError(
                "invalid_parameter_value",
                f"{param} must be a base64 data URL (data:image/<type>;base64,...); direct URL input is not supported.",
                param,
            )
        return self._decode_data_url(value, param, limit, "invalid_parameter_value")

    def _decode_data_url(self, value: str, param: str, limit: int, bad_code: str) -> SourceImage:
        payload = value[value.index(",") + 1 :]
        if len(payload) * 3 // 4 > limit + 3:
            raise MockError("image_input_too_large", f"{param}: image is larger than {limit} bytes.", param)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise MockError(bad_code, f"{param}: the data URL is not valid base64.", param) from None
        return self._checked_image(data, param, limit, bad_code)

    def _checked_image(self, data: bytes, param: str, limit: int, bad_code: str) -> SourceImage:
        if len(data) > limit:
            raise MockError(
                "image_input_too_large", f"{param}: image is {len(data)} bytes; the limit is {limit}.", param
            )
        try:
            info = image_info(data)
        except InvalidImage as exc:
            raise MockError(bad_code, f"{param}: not a decodable image ({exc}).", param) from None
        if info.width < 8 or info.height < 8:
            raise MockError(
                bad_code, f"{param}: images must be at least 8x8 pixels, got {info.width}x{info.height}.", param
            )
        return SourceImage(data)

    def _upload(self, upload: UploadedFile, param: str, limit: int) -> SourceImage:
        return self._checked_image(upload.data, param, limit, "invalid_parameter_value")

    def _reference(self, ref: Any, model: Model | None, param: str) -> SourceImage:
        """An input reference: data URL (decoded), this mock's own signed URL, or any other URL."""
        bad = "invalid_input_references" if param == "input_references" else "invalid_parameter_value"
        limit = model.input_max_bytes if model else self.config.max_image_bytes
        url = ref.get("image_url", {}).get("url") if isinstance(ref, dict) else ref
        if not isinstance(url, str) or not url:
            raise MockError(
                bad, "input_references must be an array of image URL strings, data URLs or image_url objects.", param
            )
        if url.startswith("data:"):
            if not _DATA_URL.match(url):
                raise MockError(bad, f"{param}: data URLs must be data:image/<type>;base64,...", param)
            return self._decode_data_url(url, param, limit, bad)
        if not url.startswith(("http://", "https://")):
            raise MockError(bad, f"{param}: '{url[:60]}' is neither an http(s) URL nor a data URL.", param)
        own = self._own_file(url)
        if own is not None:
            return SourceImage(own)
        # the mock never fetches the internet: a stand-in image, deterministic per URL
        seed = int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big")
        return SourceImage(self.renderer.render(RenderSpec("input-reference", _digest(url), 512, 512, seed)))

    # -- URLs and files ------------------------------------------------------------------------
    def _store(self, image: bytes) -> str:
        digest = hashlib.sha256(image).hexdigest()[:32]
        with self._store_lock:
            if digest not in self._stored:
                self._stored[digest] = image
                self._stored_bytes += len(image)
            self._stored.move_to_end(digest)
            while self._stored_bytes > self.config.render_cache_bytes and len(self._stored) > 1:
                _, dropped = self._stored.popitem(last=False)
                self._stored_bytes -= len(dropped)
        return digest

    def _signed_url(self, request: MockRequest, spec: RenderSpec, stored: str | None) -> str:
        payload: dict[str, Any] = (
            {"d": stored, "f": spec.output_format}
            if stored
            else {
                "m": spec.model,
                "p": spec.prompt,
                "w": spec.width,
                "h": spec.height,
                "s": spec.seed,
                "i": spec.index,
                "f": spec.output_format,
            }
        )
        expires = int(self.clock.now()) + self.config.url_ttl
        base = (self.config.public_base_url or request.base_url).rstrip("/")
        return base + self.signer.sign(payload, "jpg" if spec.output_format == "jpeg" else spec.output_format, expires)

    def _own_file(self, url: str) -> bytes | None:
        path, _, query = url.partition("?")
        marker = path.find(FILES_PREFIX)
        if marker < 0:
            return None
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        response = self.serve_file(MockRequest("GET", path[marker:], tuple(params.items())))
        return response.body if response.status == 200 else None

    def serve_file(self, request: MockRequest) -> MockResponse:
        """GET a signed image URL: 200 with the image, 403 tampered, 410 expired, 404 gone."""
        if request.method.upper() not in ("GET", "HEAD"):
            return json_response(
                405,
                plain_error("Signed image URLs only answer GET.", "invalid_request_error", "method_not_allowed"),
                {"allow": "GET, HEAD"},
            )
        name = request.path[len(FILES_PREFIX) :]
        query = dict(request.query)
        try:
            signed = self.signer.verify(name, query.get("expires"), query.get("signature"))
        except SignatureError as exc:
            return json_response(
                403,
                plain_error(f"Invalid image URL signature: {exc}.", "permission_error", "invalid_signature"),
                error_code="invalid_signature",
            )
        if self.clock.now() > signed.expires:
            return json_response(
                410,
                plain_error(
                    "This image URL has expired; generate the image again.", "invalid_request_error", "url_expired"
                ),
                error_code="url_expired",
            )
        p = signed.payload
        fmt = str(p.get("f", "png"))
        try:
            if p.get("d"):
                with self._store_lock:
                    image = self._stored.get(str(p["d"]))
                if image is None:
                    return json_response(
                        404,
                        plain_error(
                            "This image is no longer stored by this mock process.", "not_found_error", "file_not_found"
                        ),
                    )
            else:
                if fmt not in MEDIA_TYPES:
                    raise ValueError(fmt)
                image = self.renderer.render(
                    RenderSpec(
                        str(p["m"]),
                        str(p["p"]),
                        int(p["w"]),
                        int(p["h"]),
                        int(p["s"]),
                        int(p["i"]),
                        cast(OutputFormat, fmt),
                    )
                )
        except (KeyError, TypeError, ValueError):
            return json_response(
                403,
                plain_error("Invalid image URL payload.", "permission_error", "invalid_signature"),
                error_code="invalid_signature",
            )
        return MockResponse(
            200,
            b"" if request.method.upper() == "HEAD" else image,
            media_type=MEDIA_TYPES.get(fmt, "application/octet-stream"),
            headers={"cache-control": "private, max-age=3600"},
        )


_FALLBACK_STATUS = {
    "missing_api_key": 401,
    "invalid_api_key": 401,
    "insufficient_balance": 402,
    "model_not_found": 404,
    "image_input_too_large": 413,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "service_unavailable": 503,
}


_EDIT_IMAGE_PARTS = ("image", "image[]")


def _label(prompt: str) -> str:
    """The prompt as the picture shows it (and the signed URL carries it): short prompts verbatim,
    long ones cut, with a digest so that two long prompts never share an image."""
    if len(prompt) <= 80:
        return prompt
    return f"{prompt[:64]}… #{_digest(prompt)[:8]}"


def _digest(text: str) -> str:
    """Prompts enter images and URLs as a short digest: URLs stay short, prompts stay private."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
