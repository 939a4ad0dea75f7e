"""Tests of spec/openapi.yaml: validity, lint, examples, machine-readable conventions, schemathesis."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, find, settings
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.core.result import Ok

SPEC_PATH = Path(__file__).parent.parent / "spec" / "openapi.yaml"
REPO_ROOT = SPEC_PATH.parent.parent
RULESET_PATH = SPEC_PATH.parent / ".spectral.yaml"
ARCHITECTURE_PATH = REPO_ROOT / "ARCHITECTURE.md"
SPEC_URI = "urn:nanogpt-image-spec"
SPECTRAL_PREFIX = REPO_ROOT / ".tools" / "node"
SPECTRAL_BIN = SPECTRAL_PREFIX / "node_modules" / ".bin" / "spectral"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# operationId -> (METHOD, path), as in ARCHITECTURE.md.
EXPECTED_OPERATIONS: dict[str, tuple[str, str]] = {
    "imagesGenerate": ("POST", "/api/v1/images"),
    "imagesListModels": ("GET", "/api/v1/images/models"),
    "imagesListModelEndpoints": ("GET", "/api/v1/images/models/{modelId}/endpoints"),
    "openaiGenerateImage": ("POST", "/v1/images/generations"),
    "openaiGenerateImageApi": ("POST", "/api/v1/images/generations"),
    "openaiEditImage": ("POST", "/api/v1/images/edits"),
    "openaiEditImageAlias": ("POST", "/api/v1/images/edit"),
    "legacyListImageModels": ("GET", "/api/v1/image-models"),
    "legacyGenerateImage": ("POST", "/api/generate-image"),
    "checkMidjourneyStatus": ("POST", "/api/check-midjourney-status"),
    "legacyListModels": ("GET", "/api/models"),
    "legacyListModelsImage": ("GET", "/api/models/image"),
    "nsfwClassifyImage": ("POST", "/api/nsfw/image"),
    "listModerationModels": ("GET", "/api/v1/moderation-models"),
    "x402ListEndpoints": ("GET", "/api/v1/x402/endpoints"),
    "x402PaymentStatus": ("GET", "/api/x402/status/{paymentId}"),
    "x402CompletePayment": ("POST", "/api/x402/complete/{paymentId}"),
}

_RATE_LIMITS = ["rate_limit_exceeded", "daily_rpd_limit_exceeded", "daily_usd_limit_exceeded"]
_AUTH = ["missing_api_key", "invalid_api_key"]
_PAYMENT = ["insufficient_balance", "x402_payment_required"]
# inline moderation (documented codes) on the five routes that flow through the canonical image handler
_MODERATION_400 = [
    "content_policy_violation",
    "conflicting_moderation_model",
    "inline_moderation_requires_api_key",
    "empty_moderation_input",
    "unsupported_moderation_input",
    "unsupported_input_modality",
    "unsupported_batch_input",
    "context_length_exceeded",
]
_UNAVAILABLE = ["service_unavailable", "moderation_unavailable"]
_OPENAI_GENERATE_CODES: dict[str, list[str]] = {
    "400": [
        "invalid_content_type",
        "invalid_json",
        "missing_required_parameter",
        "invalid_parameter_value",
        "image_input_not_supported",
        *[c for c in _MODERATION_400 if c != "unsupported_moderation_input"],
    ],
    "401": _AUTH,
    "402": _PAYMENT,
    "404": ["model_not_found"],
    "413": ["image_input_too_large"],
    "429": _RATE_LIMITS,
    "500": ["server_error"],
    "503": _UNAVAILABLE,
}
_OPENAI_EDIT_CODES: dict[str, list[str]] = {
    **_OPENAI_GENERATE_CODES,
    "400": [
        "invalid_content_type",
        "invalid_json",
        "invalid_multipart_body",
        "missing_required_parameter",
        "missing_image_input",
        "invalid_parameter_value",
        "image_input_not_supported",
        *[c for c in _MODERATION_400 if c != "empty_moderation_input"],
    ],
}
_CATALOG_CODES: dict[str, list[str]] = {
    "429": ["rate_limit_exceeded"],
    "500": ["server_error"],
    "503": ["service_unavailable"],
}

# operationId -> status -> the exact error codes it must list.
EXPECTED_ERROR_CODES: dict[str, dict[str, list[str]]] = {
    "imagesGenerate": {
        "400": [
            "missing_model",
            "invalid_content_type",
            "invalid_json",
            "invalid_input_references",
            "conflicting_image_inputs",
            "unsupported_stream",
            "unsupported_provider_options",
            "invalid_parameter_value",
            "image_input_not_supported",
            *[c for c in _MODERATION_400 if c != "inline_moderation_requires_api_key"],
        ],
        "401": _AUTH,
        "402": ["insufficient_balance"],
        "404": ["model_not_found"],
        "413": ["image_input_too_large"],
        "429": _RATE_LIMITS,
        "500": ["server_error"],
        "503": _UNAVAILABLE,
    },
    "openaiGenerateImage": _OPENAI_GENERATE_CODES,
    "openaiGenerateImageApi": _OPENAI_GENERATE_CODES,
    "openaiEditImage": _OPENAI_EDIT_CODES,
    "openaiEditImageAlias": _OPENAI_EDIT_CODES,
    # 400 on every catalog: a malformed mock-only Prefer header (and a bad `detailed` on the legacy one)
    "imagesListModels": {"400": ["invalid_parameter_value"], **_CATALOG_CODES},
    "legacyListImageModels": {"400": ["invalid_parameter_value"], **_CATALOG_CODES},
    "imagesListModelEndpoints": {"400": ["invalid_parameter_value"], "404": ["model_not_found"], **_CATALOG_CODES},
    "legacyGenerateImage": {
        "400": [
            "invalid_content_type",
            "invalid_json",
            "missing_required_parameter",
            "invalid_parameter_value",
            "image_input_not_supported",
        ],
        "401": _AUTH,
        "402": ["insufficient_balance"],
        "404": ["model_not_found"],
        "413": ["image_input_too_large"],
        "429": _RATE_LIMITS,
        "500": ["server_error"],
        "503": ["service_unavailable"],
    },
    "checkMidjourneyStatus": {
        "400": ["invalid_content_type", "invalid_json", "missing_required_parameter", "invalid_parameter_value"],
        "401": _AUTH,
        "429": ["rate_limit_exceeded"],
        "500": ["server_error"],
        "503": ["service_unavailable"],
    },
    "legacyListModels": {"400": ["invalid_parameter_value"], **_CATALOG_CODES},
    "legacyListModelsImage": {"400": ["invalid_parameter_value"], **_CATALOG_CODES},
    "nsfwClassifyImage": {
        "400": ["invalid_content_type", "invalid_json", "missing_image_input", "invalid_parameter_value"],
        "401": _AUTH,
        "402": ["insufficient_balance"],
        "429": _RATE_LIMITS,
        "500": ["server_error"],
        "503": ["service_unavailable"],
    },
    "listModerationModels": {
        "400": ["invalid_parameter_value"],
        "401": _AUTH,
        "429": _RATE_LIMITS,
        "500": ["server_error"],
        "503": ["service_unavailable"],
    },
    "x402ListEndpoints": {"400": ["invalid_parameter_value"], "429": ["rate_limit_exceeded"], "500": ["server_error"]},
    "x402PaymentStatus": {
        "400": ["invalid_parameter_value"],
        "404": ["payment_not_found"],
        "429": ["rate_limit_exceeded"],
        "500": ["server_error"],
    },
    "x402CompletePayment": {
        "400": ["invalid_parameter_value"],
        "402": ["x402_payment_required"],
        "404": ["payment_not_found"],
        "409": ["payment_already_completed"],
        "410": ["payment_expired"],
        "429": ["rate_limit_exceeded"],
        "500": ["server_error"],
    },
}

# operationId -> the envelope (components/schemas name) of its non-402 error bodies.
EXPECTED_ENVELOPES: dict[str, str] = {
    "imagesGenerate": "ImageApiError",
    "imagesListModels": "OpenAIError",
    "imagesListModelEndpoints": "OpenAIError",
    "openaiGenerateImage": "OpenAIError",
    "openaiGenerateImageApi": "OpenAIError",
    "openaiEditImage": "OpenAIError",
    "openaiEditImageAlias": "OpenAIError",
    "legacyListImageModels": "OpenAIError",
    "legacyGenerateImage": "LegacyError",
    "checkMidjourneyStatus": "LegacyError",
    "legacyListModels": "OpenAIError",
    "legacyListModelsImage": "OpenAIError",
    "nsfwClassifyImage": "LegacyError",
    "listModerationModels": "OpenAIError",
    "x402ListEndpoints": "OpenAIError",
    "x402PaymentStatus": "OpenAIError",
    "x402CompletePayment": "OpenAIError",
}

_GENERATION_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
_CATALOG_SECURITY: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}, {"apiKeyAuth": []}]
_LEGACY_SECURITY: list[dict[str, list[str]]] = [{"apiKeyAuth": []}]
_X402_SECURITY: list[dict[str, list[str]]] = [*_GENERATION_SECURITY, {}]  # {}: only with x-x402: true
_PUBLIC_SECURITY: list[dict[str, list[str]]] = [{}]
EXPECTED_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "imagesGenerate": _GENERATION_SECURITY,
    "openaiGenerateImage": _X402_SECURITY,
    "openaiGenerateImageApi": _X402_SECURITY,
    "openaiEditImage": _X402_SECURITY,
    "openaiEditImageAlias": _X402_SECURITY,
    "imagesListModels": _CATALOG_SECURITY,
    "imagesListModelEndpoints": _CATALOG_SECURITY,
    "legacyListImageModels": _CATALOG_SECURITY,
    "legacyGenerateImage": _LEGACY_SECURITY,
    "checkMidjourneyStatus": _LEGACY_SECURITY,
    "legacyListModels": _CATALOG_SECURITY,
    "legacyListModelsImage": _CATALOG_SECURITY,
    "nsfwClassifyImage": [{"apiKeyAuth": []}, {"bearerAuth": []}],
    "listModerationModels": _GENERATION_SECURITY,
    "x402ListEndpoints": _PUBLIC_SECURITY,
    "x402PaymentStatus": _PUBLIC_SECURITY,
    "x402CompletePayment": _PUBLIC_SECURITY,
}

# JSON Schema keywords whose value is a subschema / a list of subschemas / a map of subschemas.
_SUBSCHEMA_KEYS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_SUBSCHEMA_LIST_KEYS = ("oneOf", "anyOf", "allOf", "prefixItems")
_SUBSCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "dependentSchemas")

# An 8x8 RGB PNG, the same one the spec's examples use.
TINY_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAGUlEQVR42mNkYGhQYGDARCwMCgxYweCUAABobwJednxjlwAAAABJRU5ErkJggg=="
)
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(?P<data>.+)$", re.DOTALL)
_BINARY_PLACEHOLDER = re.compile(r"^<binary [a-z]+/[a-z0-9.+-]+>$")


# --------------------------------------------------------------------------------------------- helpers


def load_spec() -> dict[str, Any]:
    """Parse spec/openapi.yaml."""
    with SPEC_PATH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict)
    return data


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _lookup(spec: Mapping[str, Any], pointer: str) -> Any:
    node: Any = spec
    for token in pointer.lstrip("/").split("/") if pointer not in ("", "/") else []:
        node = node[int(token)] if isinstance(node, list) else node[_unescape(token)]
    return node


def _deref(spec: Mapping[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
    """Follow local `$ref`s (responses, examples, parameters, ...): the target and its JSON pointer."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert isinstance(ref, str)
        assert ref.startswith("#/"), f"{pointer}: only local $refs are expected, got {ref}"
        assert ref not in seen, f"{pointer}: $ref cycle through {ref}"
        seen.add(ref)
        pointer = ref[1:]
        node = _lookup(spec, pointer)
    return node, pointer


def _operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(METHOD, path, operation object, JSON pointer) of every operation."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method], f"/paths/{_escape(path)}/{method}"


def _operations_by_id(spec: Mapping[str, Any]) -> dict[str, tuple[str, str, dict[str, Any], str]]:
    return {op["operationId"]: (method, path, op, ptr) for method, path, op, ptr in _operations(spec)}


def _responses(spec: Mapping[str, Any], op: Mapping[str, Any], op_ptr: str) -> dict[str, tuple[Any, str]]:
    return {
        str(status): _deref(spec, response, f"{op_ptr}/responses/{_escape(str(status))}")
        for status, response in op["responses"].items()
    }


def _error_responses(
    spec: Mapping[str, Any], op: Mapping[str, Any], op_ptr: str
) -> dict[str, tuple[dict[str, Any], str]]:
    return {
        status: (response, ptr)
        for status, (response, ptr) in _responses(spec, op, op_ptr).items()
        if status[0] in "45" and status.isdigit()
    }


def _validator(pointer: str, registry: Registry[Any]) -> Draft202012Validator:
    """A 2020-12 validator for the schema at `pointer` of the spec (its `#/components` refs resolve)."""
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _errors(pointer: str, registry: Registry[Any], instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _validator(pointer, registry).iter_errors(instance)
    ]


def _iter_schemas(spec: Mapping[str, Any], node: Any, pointer: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every (sub)schema under the schema at `pointer`, without following `$ref`s."""
    if not isinstance(node, dict):
        return
    yield node, pointer
    for key in _SUBSCHEMA_KEYS:
        if isinstance(node.get(key), dict):
            yield from _iter_schemas(spec, node[key], f"{pointer}/{key}")
    for key in _SUBSCHEMA_LIST_KEYS:
        for index, sub in enumerate(node.get(key) or []):
            yield from _iter_schemas(spec, sub, f"{pointer}/{key}/{index}")
    for key in _SUBSCHEMA_MAP_KEYS:
        for name, sub in (node.get(key) or {}).items():
            yield from _iter_schemas(spec, sub, f"{pointer}/{key}/{_escape(name)}")


def _media_types(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(media type, media type object, pointer) of every request body and response, deduplicated."""
    seen: set[str] = set()
    containers: list[tuple[Any, str]] = []
    for _method, _path, op, op_ptr in _operations(spec):
        if "requestBody" in op:
            containers.append(_deref(spec, op["requestBody"], f"{op_ptr}/requestBody"))
        containers.extend(_responses(spec, op, op_ptr).values())
    components = spec.get("components", {})
    for kind in ("requestBodies", "responses"):
        for name, obj in components.get(kind, {}).items():
            containers.append(_deref(spec, obj, f"/components/{kind}/{_escape(name)}"))
    for container, ptr in containers:
        if ptr in seen:
            continue
        seen.add(ptr)
        for media_type, media in (container.get("content") or {}).items():
            yield media_type, media, f"{ptr}/content/{_escape(media_type)}"


def _all_schema_roots(spec: Mapping[str, Any]) -> Iterator[tuple[Any, str]]:
    """Root schemas: components/schemas, media types, parameters and headers (inline or components)."""
    components = spec.get("components", {})
    for name, schema in components.get("schemas", {}).items():
        yield schema, f"/components/schemas/{_escape(name)}"
    for _media_type, media, ptr in _media_types(spec):
        if "schema" in media:
            yield media["schema"], f"{ptr}/schema"
    for kind in ("parameters", "headers"):
        for name, obj in components.get(kind, {}).items():
            if "schema" in obj:
                yield obj["schema"], f"/components/{kind}/{_escape(name)}/schema"


def _example_values(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any, str, str]]:
    """(where, value, schema pointer, media type) of every example in the document."""
    for media_type, media, ptr in _media_types(spec):
        if "schema" not in media:
            continue
        if "example" in media:
            yield f"{ptr}/example", media["example"], f"{ptr}/schema", media_type
        for name, example in (media.get("examples") or {}).items():
            resolved, ex_ptr = _deref(spec, example, f"{ptr}/examples/{_escape(name)}")
            yield f"{ptr}/examples/{name} ({ex_ptr})", resolved["value"], f"{ptr}/schema", media_type
    parameter_like: list[tuple[Any, str]] = []
    for _method, _path, op, op_ptr in _operations(spec):
        for index, param in enumerate(op.get("parameters", [])):
            parameter_like.append(_deref(spec, param, f"{op_ptr}/parameters/{index}"))
    components = spec.get("components", {})
    for kind in ("parameters", "headers"):
        for name, obj in components.get(kind, {}).items():
            parameter_like.append((obj, f"/components/{kind}/{_escape(name)}"))
    seen: set[str] = set()
    for obj, ptr in parameter_like:
        if ptr in seen:
            continue
        seen.add(ptr)
        if "example" in obj:
            yield f"{ptr}/example", obj["example"], f"{ptr}/schema", ""
        for name, example in (obj.get("examples") or {}).items():
            resolved, ex_ptr = _deref(spec, example, f"{ptr}/examples/{_escape(name)}")
            yield f"{ptr}/examples/{name} ({ex_ptr})", resolved["value"], f"{ptr}/schema", ""
    for root, root_ptr in _all_schema_roots(spec):
        for schema, ptr in _iter_schemas(spec, root, root_ptr):
            for index, value in enumerate(schema.get("examples") or []):
                yield f"{ptr}/examples/{index}", value, ptr, ""
            if "example" in schema:
                yield f"{ptr}/example", schema["example"], ptr, ""


def _walk_values(value: Any) -> Iterator[tuple[str | None, Any]]:
    """(key, value) of every node of a JSON value (key is None for list items and the root)."""
    stack: list[tuple[str | None, Any]] = [(None, value)]
    while stack:
        key, node = stack.pop()
        yield key, node
        if isinstance(node, dict):
            stack.extend(node.items())
        elif isinstance(node, list):
            stack.extend((None, item) for item in node)


def _decode_image(data: str, where: str) -> tuple[int, int]:
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error as exc:  # pragma: no cover - failure path
        pytest.fail(f"{where}: not valid base64: {exc}")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            assert image.format in {"PNG", "JPEG", "WEBP"}, f"{where}: unexpected format {image.format}"
            return image.size
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError  # pragma: no cover
        pytest.fail(f"{where}: base64 does not decode to an image: {exc}")


def _accepts_binary(spec: Mapping[str, Any], schema: Any, pointer: str) -> bool:
    """Whether a multipart part schema (or the items of an array part) declares `format: binary`."""
    resolved, ptr = _deref(spec, schema, pointer)
    return any(sub.get("format") == "binary" for sub, _ in _iter_schemas(spec, resolved, ptr))


def _draw_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        # the first case that satisfies the condition is the answer; shrinking it to a minimal one
        # cost ~20 s per multipart operation and asserted nothing more
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture(scope="module")
def registry(spec: dict[str, Any]) -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(spec, default_specification=DRAFT202012)
    result: Registry[Any] = Registry().with_resource(uri=SPEC_URI, resource=resource)
    return result


@pytest.fixture(scope="session")
def spectral() -> Path:
    """The spectral CLI, installed with npm into <repo>/.tools/node when absent."""
    if not SPECTRAL_BIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is required to install @stoplight/spectral-cli (node >= 18)")
        SPECTRAL_PREFIX.mkdir(parents=True, exist_ok=True)
        install = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(SPECTRAL_PREFIX),
                "--no-audit",
                "--no-fund",
                "@stoplight/spectral-cli@6",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if install.returncode != 0 or not SPECTRAL_BIN.exists():
            pytest.fail(f"npm install of spectral failed:\n{install.stdout}\n{install.stderr}")
    return SPECTRAL_BIN


# --------------------------------------------------------------------------------------------- validity


def test_spec_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_spectral_lint_has_no_errors(spectral: Path, tmp_path: Path) -> None:
    report = tmp_path / "spectral.json"
    result = subprocess.run(
        [
            str(spectral),
            "lint",
            str(SPEC_PATH),
            "--ruleset",
            str(RULESET_PATH),
            "--format",
            "json",
            "--output",
            str(report),
            "--fail-severity",
            "error",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
    )
    assert report.exists(), f"spectral produced no report:\n{result.stdout}\n{result.stderr}"
    findings: list[dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))
    errors = [f for f in findings if f.get("severity") == 0]
    if errors:
        print(json.dumps(errors, indent=2))
    assert not errors, "\n".join(f"{'.'.join(map(str, e['path']))}: {e['code']}: {e['message']}" for e in errors)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    # The ruleset extends the full spectral:oas set; warnings are kept at zero too.
    others = [f"{f['code']}: {'.'.join(map(str, f['path']))}: {f['message']}" for f in findings]
    assert not others, "\n".join(others)


def test_ruleset_extends_spectral_oas() -> None:
    with RULESET_PATH.open(encoding="utf-8") as fh:
        ruleset = yaml.safe_load(fh)
    assert ruleset["extends"] == [["spectral:oas", "recommended"]]
    assert "rules" not in ruleset, "rules may only be switched off in `overrides`, each with a reason"


# --------------------------------------------------------------------------------------------- examples


def test_every_example_matches_its_schema(spec: dict[str, Any], registry: Registry[Any]) -> None:
    failures: list[str] = []
    count = 0
    for where, value, schema_ptr, media_type in _example_values(spec):
        count += 1
        if media_type == "multipart/form-data":
            # Binary parts cannot be written in YAML; examples show them as "<binary image/png>"
            # placeholders. JSON Schema treats `format: binary` as an annotation, so the placeholders
            # validate as strings; check that they only stand on parts that really are files.
            schema = _lookup(spec, schema_ptr)
            resolved, resolved_ptr = _deref(spec, schema, schema_ptr)
            for part, part_value in value.items():
                items = part_value if isinstance(part_value, list) else [part_value]
                if any(isinstance(v, str) and _BINARY_PLACEHOLDER.match(v) for v in items):
                    part_schema = resolved.get("properties", {}).get(part)
                    part_ptr = f"{resolved_ptr}/properties/{_escape(part)}"
                    if part_schema is None or not _accepts_binary(spec, part_schema, part_ptr):
                        failures.append(f"{where}: binary placeholder on non-file part {part!r}")
        failures.extend(f"{where}: {message}" for message in _errors(schema_ptr, registry, value))
    assert count > 50, f"suspiciously few examples found: {count}"
    assert not failures, "\n".join(failures)


def test_every_image_in_examples_is_a_real_image(spec: dict[str, Any]) -> None:
    b64_seen = 0
    data_urls_seen = 0
    for where, value, _schema_ptr, _media_type in _example_values(spec):
        for key, node in _walk_values(value):
            if key == "b64_json":
                assert isinstance(node, str), f"{where}: b64_json must be a string"
                width, height = _decode_image(node, where)
                assert width > 0 and height > 0
                b64_seen += 1
            elif isinstance(node, str) and (match := _DATA_URL.match(node)):
                _decode_image(match["data"], where)
                data_urls_seen += 1
    assert b64_seen >= 1
    assert data_urls_seen >= 1


def test_success_examples_cover_both_image_shapes(spec: dict[str, Any]) -> None:
    examples = spec["components"]["responses"]["ImageSuccess"]["content"]["application/json"]["examples"]
    assert set(examples) >= {"b64_json", "url"}


def test_data_items_carry_exactly_one_of_url_and_b64(registry: Registry[Any]) -> None:
    png = TINY_PNG_B64
    ptr = "/components/schemas/ImageResponse"
    assert not _errors(ptr, registry, {"created": 1, "data": [{"b64_json": png}]})
    assert not _errors(ptr, registry, {"created": 1, "data": [{"url": "https://example.com/a.png"}]})
    assert _errors(ptr, registry, {"created": 1, "data": [{"b64_json": png, "url": "https://example.com/a"}]})
    assert _errors(ptr, registry, {"created": 1, "data": [{"url": "https://example.com/a", "b64_json": None}]})
    assert _errors(ptr, registry, {"created": 1, "data": [{}]})
    assert _errors(ptr, registry, {"created": 1, "data": []})


# --------------------------------------------------------------------------------------------- operations


def test_architecture_table_matches_expected_operations() -> None:
    text = ARCHITECTURE_PATH.read_text(encoding="utf-8")
    row = re.compile(r"^\s*\|\s*`(\w+)`\s*\|\s*`(GET|POST|PUT|PATCH|DELETE) (\S+)`", re.M)
    rows = {op_id: (method, path) for op_id, method, path in row.findall(text)}
    assert rows == EXPECTED_OPERATIONS


def test_every_operation_exists(spec: dict[str, Any]) -> None:
    found = {op["operationId"]: (method, path) for method, path, op, _ in _operations(spec)}
    assert found == EXPECTED_OPERATIONS


def test_operation_ids_are_unique(spec: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _m, _p, op, _ in _operations(spec)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_only_legacy_generate_is_deprecated(spec: dict[str, Any]) -> None:
    deprecated = {op["operationId"] for _m, _p, op, _ in _operations(spec) if op.get("deprecated")}
    assert deprecated == {"legacyGenerateImage"}


def test_security_per_operation(spec: dict[str, Any]) -> None:
    for op_id, (_method, _path, op, _ptr) in _operations_by_id(spec).items():
        assert op.get("security") == EXPECTED_SECURITY[op_id], op_id
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    assert (schemes["apiKeyAuth"]["type"], schemes["apiKeyAuth"]["in"], schemes["apiKeyAuth"]["name"]) == (
        "apiKey",
        "header",
        "x-api-key",
    )


def test_servers(spec: dict[str, Any]) -> None:
    assert [s["url"] for s in spec["servers"]] == ["https://nano-gpt.com", "https://api.nano-gpt.com"]


def test_model_id_may_contain_slashes(spec: dict[str, Any]) -> None:
    _m, _p, op, ptr = _operations_by_id(spec)["imagesListModelEndpoints"]
    params = [_deref(spec, p, ptr)[0] for p in op["parameters"]]
    (model_id,) = [p for p in params if p["in"] == "path"]
    assert model_id["name"] == "modelId"
    assert model_id["x-path-param-may-contain-slashes"] is True
    assert "slash" in model_id["description"]
    # No other path parameter claims it.
    for _method, _path, other, other_ptr in _operations(spec):
        for p in other.get("parameters", []):
            resolved, _ = _deref(spec, p, other_ptr)
            if resolved is not model_id:
                assert "x-path-param-may-contain-slashes" not in resolved


def test_x402_header_on_accountless_operations(spec: dict[str, Any]) -> None:
    for op_id in ("openaiGenerateImage", "openaiGenerateImageApi", "openaiEditImage", "openaiEditImageAlias"):
        _m, _p, op, ptr = _operations_by_id(spec)[op_id]
        params = [_deref(spec, p, ptr)[0] for p in op.get("parameters", [])]
        x402 = [p for p in params if p["name"].lower() == "x-x402"]
        assert len(x402) == 1, op_id
        assert x402[0]["in"] == "header"
        assert x402[0]["schema"]["enum"] == ["true"]


def test_edit_request_offers_multipart_and_json(spec: dict[str, Any]) -> None:
    for op_id in ("openaiEditImage", "openaiEditImageAlias"):
        _m, _p, op, ptr = _operations_by_id(spec)[op_id]
        body, _ = _deref(spec, op["requestBody"], f"{ptr}/requestBody")
        assert set(body["content"]) == {"multipart/form-data", "application/json"}
        multipart = body["content"]["multipart/form-data"]
        assert set(multipart["encoding"]) >= {"image", "image[]", "mask"}
    _m, _p, op, ptr = _operations_by_id(spec)["imagesGenerate"]
    body, _ = _deref(spec, op["requestBody"], f"{ptr}/requestBody")
    assert set(body["content"]) == {"application/json"}


def test_every_schema_property_has_a_description(spec: dict[str, Any]) -> None:
    missing: list[str] = []
    seen: set[str] = set()
    for root, root_ptr in _all_schema_roots(spec):
        for schema, ptr in _iter_schemas(spec, root, root_ptr):
            for name, prop in (schema.get("properties") or {}).items():
                prop_ptr = f"{ptr}/properties/{_escape(name)}"
                if prop_ptr in seen:
                    continue
                seen.add(prop_ptr)
                if not (isinstance(prop, dict) and prop.get("description")):
                    missing.append(prop_ptr)
    assert not missing, "\n".join(missing)


# --------------------------------------------------------------------------------------------- errors


def _example_code(body: Any) -> list[str]:
    """Every machine-readable code a body carries (top-level `code`, `error.code`)."""
    codes: list[str] = []
    if isinstance(body, dict):
        if isinstance(body.get("code"), str):
            codes.append(body["code"])
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            codes.append(error["code"])
    return codes


def test_error_responses_list_codes_with_examples(spec: dict[str, Any]) -> None:
    failures: list[str] = []
    for op_id, (_method, _path, op, op_ptr) in _operations_by_id(spec).items():
        status_of: dict[str, str] = {}
        for status, (response, ptr) in _error_responses(spec, op, op_ptr).items():
            where = f"{op_id} {status} ({ptr})"
            codes = response.get("x-error-codes")
            if not (isinstance(codes, list) and codes and all(isinstance(c, str) for c in codes)):
                failures.append(f"{where}: missing or empty x-error-codes")
                continue
            if len(codes) != len(set(codes)):
                failures.append(f"{where}: duplicate codes {codes}")
            for code in codes:
                if code in status_of:
                    failures.append(f"{where}: {code} already listed under {status_of[code]}")
                status_of[code] = status
            media = (response.get("content") or {}).get("application/json")
            if media is None:
                failures.append(f"{where}: no application/json content")
                continue
            examples = media.get("examples") or {}
            if set(examples) != set(codes):
                failures.append(f"{where}: examples {sorted(examples)} != x-error-codes {sorted(codes)}")
            for code in codes:
                if code not in examples:
                    continue
                value = _deref(spec, examples[code], f"{ptr}/examples/{code}")[0]["value"]
                if isinstance(value, dict) and "payment" in value:
                    # x402 quotes keep the documented `error.code: insufficient_quota`; clients detect them
                    # by the top-level `payment` object, so the example key is our own machine name.
                    continue
                wrong = [c for c in _example_code(value) if c != code]
                if wrong:
                    failures.append(f"{where}: example {code!r} carries code(s) {wrong}")
                if isinstance(value, dict) and isinstance(value.get("status"), int) and value["status"] != int(status):
                    failures.append(f"{where}: example {code!r} has status {value['status']}")
    assert not failures, "\n".join(failures)


def test_error_codes_per_operation(spec: dict[str, Any]) -> None:
    for op_id, (_method, _path, op, op_ptr) in _operations_by_id(spec).items():
        listed = {
            status: response["x-error-codes"] for status, (response, _) in _error_responses(spec, op, op_ptr).items()
        }
        assert listed == EXPECTED_ERROR_CODES[op_id], op_id


def test_error_envelopes(spec: dict[str, Any]) -> None:
    for op_id, (_method, _path, op, op_ptr) in _operations_by_id(spec).items():
        for status, (response, ptr) in _error_responses(spec, op, op_ptr).items():
            schema = response["content"]["application/json"]["schema"]
            if status == "402":
                refs = [s.get("$ref") for s in schema.get("oneOf", [schema])]
                assert "#/components/schemas/InsufficientBalanceError" in refs, ptr
                expect_x402 = "x402_payment_required" in response["x-error-codes"]
                assert ("#/components/schemas/X402PaymentRequired" in refs) == expect_x402, ptr
            else:
                assert schema == {"$ref": f"#/components/schemas/{EXPECTED_ENVELOPES[op_id]}"}, ptr


def test_rate_limited_responses_declare_retry_after(spec: dict[str, Any]) -> None:
    seen = 0
    for op_id, (_method, _path, op, op_ptr) in _operations_by_id(spec).items():
        for status, (response, ptr) in _error_responses(spec, op, op_ptr).items():
            if status == "429":
                header, _ = _deref(spec, (response.get("headers") or {}).get("Retry-After"), ptr)
                assert isinstance(header, dict), f"{op_id}: 429 without Retry-After ({ptr})"
                assert header["schema"]["type"] == "integer"
                seen += 1
    assert seen == len(EXPECTED_OPERATIONS)


# --------------------------------------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def st_schema() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return schemathesis.openapi.from_path(SPEC_PATH)


def test_schemathesis_loads_without_warnings(st_schema: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(st_schema.iter_schema_warnings()) == []
        results = list(st_schema.get_all_operations())
    failures = [str(r.err()) for r in results if not isinstance(r, Ok)]
    assert not failures, failures
    ids = {r.ok().definition.raw["operationId"] for r in results if isinstance(r, Ok)}
    assert ids == set(EXPECTED_OPERATIONS)


def _body_media_types(spec: Mapping[str, Any], op_id: str) -> list[str]:
    _m, _p, op, ptr = _operations_by_id(spec)[op_id]
    if "requestBody" not in op:
        return []
    body, _ = _deref(spec, op["requestBody"], f"{ptr}/requestBody")
    return sorted(body["content"])


@pytest.mark.parametrize("op_id", sorted(EXPECTED_OPERATIONS))
def test_schemathesis_generates_cases(
    op_id: str, st_schema: Any, spec: dict[str, Any], registry: Registry[Any]
) -> None:
    method, path = EXPECTED_OPERATIONS[op_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        operation = st_schema.find_operation_by_id(op_id)
        assert (operation.method.upper(), operation.path) == (method, path)
        strategy = operation.as_strategy()
        media_types: list[str | None] = [*_body_media_types(spec, op_id)] or [None]
        for media_type in media_types:

            def wanted(case: Any, media_type: str | None = media_type) -> bool:
                return media_type is None or bool(case.media_type == media_type)

            case = find(strategy, wanted, settings=_draw_settings(200))
            kwargs = case.as_transport_kwargs(base_url="http://mock.invalid")
            assert kwargs["method"] == method
            assert kwargs["url"].startswith("http://mock.invalid/")
            if media_type is None:
                continue
            _m, _p, op, ptr = _operations_by_id(spec)[op_id]
            _body, body_ptr = _deref(spec, op["requestBody"], f"{ptr}/requestBody")
            schema_ptr = f"{body_ptr}/content/{_escape(media_type)}/schema"
            body = case.body
            if media_type == "multipart/form-data":
                assert kwargs["files"], "multipart body was not serialized as form parts"
                # File parts may be drawn as bytes; JSON Schema sees them as the strings they stand for.
                body = {k: "<binary>" if isinstance(v, bytes) else v for k, v in body.items()}
            assert not _errors(schema_ptr, registry, body), (op_id, media_type, body)


def test_every_operation_declares_the_mock_only_prefer_header(spec: dict[str, Any]) -> None:
    prefer = spec["components"]["parameters"]["Prefer"]
    assert prefer["in"] == "header" and prefer["x-mock-only"] is True and not prefer["required"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            refs = [p.get("$ref") for p in op.get("parameters", [])]
            assert "#/components/parameters/Prefer" in refs, f"{method.upper()} {path}"
