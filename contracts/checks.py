"""Domain checks of the NanoGPT image API, registered with ``@schemathesis.check``.

They run wherever schemathesis validates a response: in ``nanogpt-contract run``, in pytest
(``case.call_and_validate()``) and in ``st run`` (``SCHEMATHESIS_HOOKS=contracts.checks``).
Spec facts (documented codes, statuses, envelopes) come from ``mockserver.spec``; catalog facts
from the target's own catalog when a run has installed one (``use_environment``).

Every problem is raised as an ``AssertionError`` for schemathesis and also recorded as a structured
``Finding`` (check name, JSON path, code, model) for the reports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from PIL import Image, UnidentifiedImageError

from mockserver.spec import Operation, Spec, load_spec

from .budget import GENERATING, request_count, request_model, request_resolution
from .catalog import TargetCatalog, parse_wxh
from .model import Finding

PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}


@dataclass
class CheckEnvironment:
    """What the checks may use beyond the response: the spec, the catalog, a client, shared state."""

    spec: Spec
    catalog: TargetCatalog | None = None
    client: httpx.Client | None = None
    fetch_urls: bool = True  # False in the proxy, which never sends a request of its own
    findings: list[Finding] = field(default_factory=list)
    balances: dict[str, float] = field(default_factory=dict)
    seeded: dict[str, list[str]] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)  # hash/format/size of every image seen
    lock: threading.RLock = field(default_factory=threading.RLock)

    def record(self, finding: Finding) -> None:
        with self.lock:
            self.findings.append(finding)

    def take_findings(self) -> list[Finding]:
        with self.lock:
            out, self.findings = self.findings, []
            return out


_ACTIVE: CheckEnvironment | None = None
_DEFAULT: CheckEnvironment | None = None


def environment() -> CheckEnvironment:
    """The run's environment, or a default one (spec only) for ``st run`` and third-party tests."""
    global _DEFAULT
    if _ACTIVE is not None:
        return _ACTIVE
    if _DEFAULT is None:
        _DEFAULT = CheckEnvironment(load_spec())
    return _DEFAULT


@contextmanager
def use_environment(env: CheckEnvironment) -> Iterator[CheckEnvironment]:
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, env
    try:
        yield env
    finally:
        _ACTIVE = previous


# -- spec look-ups ------------------------------------------------------------------------------


def operation_of(case: Any, spec: Spec) -> Operation | None:
    """The spec operation a schemathesis case belongs to (None for other APIs' schemas)."""
    try:
        op_id = case.operation.definition.raw.get("operationId")
    except AttributeError:
        return None
    return spec.by_id.get(op_id) if isinstance(op_id, str) else None


def raw_code(body: Any) -> str | None:
    """The code an error body carries, in any of the documented envelopes."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict) and isinstance(inner.get("code"), str):
        return str(inner["code"])
    return str(body["code"]) if isinstance(body.get("code"), str) else None


def identify_code(operation: Operation, status: int, body: Any) -> str | None:
    """The documented code (x-error-codes name) an error body stands for, or None.

    Most envelopes carry the name itself; the 402 bodies are recognised by their documented shape
    (``insufficient_balance`` carries no code, the x402 quote carries ``insufficient_quota``).
    """
    code = raw_code(body)
    if code in operation.errors:
        return code
    same_status = [t for t in operation.errors.values() if t.status == status]
    for template in same_status:
        if code is not None and raw_code(template.body) == code:
            return template.code
    if code is None and isinstance(body, dict):
        for template in same_status:
            if raw_code(template.body) is None and set(template.body) == set(body):
                return template.code
    return None


def envelope_problems(operation: Operation, code: str, status: int, body: Any) -> list[tuple[str, str]]:
    """(JSON path, problem) where ``body`` leaves the documented envelope of ``code``."""
    template = operation.errors[code]
    expected = template.body
    problems: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        return [("$", f"error body is {type(body).__name__}, the documented envelope is an object")]
    for key in expected:
        if key == template.param_key:
            continue
        if key not in body:
            problems.append((f"$.{key}", "missing (documented in the envelope)"))
    for key in body:
        if key not in expected:
            problems.append((f"$.{key}", "not part of the documented envelope"))
    want_inner, got_inner = expected.get("error"), body.get("error")
    if isinstance(want_inner, dict):
        if not isinstance(got_inner, dict):
            problems.append(("$.error", f"is {type(got_inner).__name__}, documented as an object"))
        else:
            optional = {template.param_key, "param", "parameter"} - {None}
            for key in want_inner:
                if key not in got_inner and key not in optional:
                    problems.append((f"$.error.{key}", "missing (documented in the envelope)"))
            for key in got_inner:
                if key not in want_inner and key not in ({template.param_key} - {None}):
                    problems.append((f"$.error.{key}", "not part of the documented envelope"))
    elif isinstance(want_inner, str) and not isinstance(got_inner, str):
        problems.append(("$.error", f"is {type(got_inner).__name__}, documented as a string"))
    if "status" in expected and "status" in body and body["status"] != status:
        problems.append(("$.status", f"says {body['status']!r} but the HTTP status is {status}"))
    if (
        isinstance(expected.get("code"), str)
        and isinstance(want_inner, dict)
        and isinstance(got_inner, dict)
        and body.get("code") != got_inner.get("code")
    ):
        problems.append(("$.code", "differs from $.error.code"))
    return problems


def json_body(response: Any) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def request_body(case: Any) -> dict[str, Any]:
    """The case's body as a dict of fields (JSON object or multipart form)."""
    body = getattr(case, "body", None)
    return dict(body) if isinstance(body, dict) else {}


def _fail(env: CheckEnvironment, problems: list[Finding]) -> None:
    for finding in problems:
        env.record(finding)
    if problems:
        raise AssertionError("\n".join(f"[{f.check}] {f.path + ': ' if f.path else ''}{f.message}" for f in problems))


# -- image helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    format: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "format": self.format, "width": self.width, "height": self.height}


def image_facts(data: bytes) -> ImageFacts:
    """Decode fully (not just the header): a truncated image must fail here."""
    with Image.open(io.BytesIO(data)) as image:
        fmt = PIL_FORMATS.get(str(image.format), str(image.format).lower())
        image.load()
        return ImageFacts(hashlib.sha256(data).hexdigest(), fmt, image.width, image.height)


def expected_format(body: dict[str, Any]) -> str:
    value = str(body.get("output_format") or "png").lower()
    return "jpeg" if value == "jpg" else value


def has_image_inputs(body: dict[str, Any]) -> bool:
    keys = ("image", "image[]", "imageDataUrl", "imageDataUrls", "input_references", "image_url", "images")
    return any(body.get(k) for k in keys)


# -- the checks ----------------------------------------------------------------------------------


@schemathesis.check
def nanogpt_error_contract(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answer carries a code the spec documents for this operation, with its status and envelope."""
    env = environment()
    operation = operation_of(case, env.spec)
    status = int(response.status_code)
    if operation is None or status < 400:
        return None
    body = json_body(response)
    code = identify_code(operation, status, body)
    where: dict[str, Any] = {"operation_id": operation.operation_id, "status": status}
    problems: list[Finding] = []
    if code is None:
        problems.append(
            Finding(
                "error_code_documented",
                f"{status} carries code {raw_code(body)!r}, which {operation.operation_id} does not document",
                code=raw_code(body),
                **where,
            )
        )
    else:
        template = operation.errors[code]
        if template.status != status:
            problems.append(
                Finding(
                    "error_status",
                    f"{code} is documented with status {template.status}, the target answered {status}",
                    code=code,
                    **where,
                )
            )
        for path, message in envelope_problems(operation, code, status, body):
            problems.append(Finding("error_envelope", f"{code}: {message}", path=path, code=code, **where))
        if "retry-after" in template.headers and status == 429 and "retry-after" not in response.headers:
            problems.append(Finding("error_envelope", f"{code}: 429 without Retry-After", code=code, **where))
    _fail(env, problems)
    return True


def _images_of(
    env: CheckEnvironment, item: dict[str, Any], problems: list[Finding], where: dict[str, Any]
) -> bytes | None:
    """The bytes of one data item: decoded b64_json, or the download of its URL."""
    if isinstance(item.get("b64_json"), str):
        try:
            return base64.b64decode(item["b64_json"], validate=True)
        except (binascii.Error, ValueError):
            problems.append(Finding("image_decodes", "b64_json is not valid base64", **where))
            return None
    url = item.get("url")
    if not isinstance(url, str) or not env.fetch_urls:
        return None
    client = env.client or httpx.Client(timeout=60.0)
    try:
        downloaded = client.get(url)
    except httpx.HTTPError as exc:
        problems.append(Finding("url_downloads", f"GET {url.split('?')[0]} failed: {type(exc).__name__}", **where))
        return None
    finally:
        if env.client is None:
            client.close()
    if downloaded.status_code != 200:
        problems.append(
            Finding("url_downloads", f"GET {url.split('?')[0]} answered {downloaded.status_code}, not 200", **where)
        )
        return None
    return downloaded.content


@schemathesis.check
def nanogpt_images(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every returned image decodes and matches the requested format, pixel size and count."""
    env = environment()
    operation = operation_of(case, env.spec)
    if operation is None or operation.operation_id not in GENERATING or not 200 <= int(response.status_code) < 300:
        return None
    body = json_body(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None  # the schema check reports the shape
    op_id = operation.operation_id
    request = request_body(case)
    model_id = request_model(op_id, request)
    model = env.catalog.get(model_id) if env.catalog else None
    base: dict[str, Any] = {"operation_id": op_id, "status": int(response.status_code)}
    if isinstance(model_id, str):
        base["model"] = model_id
    problems: list[Finding] = []
    # count: fixed by the model, else nImages beats n
    expected = model.fixed_image_count if model and model.fixed_image_count else request_count(op_id, request)
    if len(data) != expected:
        both = "nImages" in request and "n" in request and op_id == "imagesGenerate"
        if both and len(data) == _int(request.get("n")):
            problems.append(
                Finding(
                    "nimages_beats_n",
                    f"asked n={request['n']} and nImages={request['nImages']}: got "
                    f"{len(data)} images, nImages must win",
                    path="$.data",
                    **base,
                )
            )
        else:
            problems.append(
                Finding("image_count", f"asked for {expected} images, got {len(data)}", path="$.data", **base)
            )
    want_format = expected_format(request)
    size = request_resolution(op_id, request)
    want_size = parse_wxh(size) if size is not None else None
    if want_size is None and size is None and "aspect_ratio" not in request and not has_image_inputs(request) and model:
        default = model.default_resolution
        want_size = parse_wxh(default) if default else None
    hashes: list[str] = []
    for index, item in enumerate(data):
        where = {**base, "path": f"$.data[{index}]"}
        if not isinstance(item, dict) or ("url" in item) == ("b64_json" in item):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            problems.append(Finding("data_item_exclusive", f"needs exactly one of url / b64_json, has {keys}", **where))
            continue
        raw = _images_of(env, item, problems, where)
        if raw is None:
            continue
        try:
            facts = image_facts(raw)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            problems.append(Finding("image_decodes", f"not a decodable image ({type(exc).__name__})", **where))
            continue
        hashes.append(facts.sha256)
        with env.lock:
            env.images.append({"operation_id": op_id, **facts.to_dict()})
        if facts.format != want_format:
            problems.append(Finding("image_format", f"asked for {want_format}, got {facts.format}", **where))
        if want_size is not None and (facts.width, facts.height) != want_size:
            problems.append(
                Finding(
                    "image_size", f"asked for {want_size[0]}x{want_size[1]}, got {facts.width}x{facts.height}", **where
                )
            )
    if model is not None and model.claims_seed and isinstance(request.get("seed"), int) and len(hashes) == len(data):
        key = _seed_key(op_id, request)
        with env.lock:
            seen = env.seeded.get(key)
            env.seeded.setdefault(key, hashes)
        if seen is not None and seen != hashes:
            problems.append(
                Finding(
                    "seed_reproducible",
                    f"same request with seed={request['seed']} returned different bytes "
                    f"although {model.id} publishes `seed`",
                    path="$.data",
                    **base,
                )
            )
    _fail(env, problems)
    return True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _seed_key(op_id: str, request: dict[str, Any]) -> str:
    stable = {k: v for k, v in request.items() if k != "response_format" and not isinstance(v, bytes)}
    return op_id + ":" + hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


@schemathesis.check
def nanogpt_billing(ctx: Any, response: Any, case: Any) -> bool | None:
    """``remainingBalance`` drops by ``cost``, and ``cost`` stays within the catalog's price."""
    env = environment()
    operation = operation_of(case, env.spec)
    if operation is None or not 200 <= int(response.status_code) < 300:
        return None
    if operation.operation_id not in GENERATING:
        _other_charge(env, ctx, case, json_body(response))  # e.g. NSFW classification: `cost`, no balance
        return None
    body = json_body(response)
    if not isinstance(body, dict):
        return None
    op_id = operation.operation_id
    base: dict[str, Any] = {"operation_id": op_id, "status": int(response.status_code)}
    problems: list[Finding] = []
    cost, remaining = body.get("cost"), body.get("remainingBalance")
    if not isinstance(cost, (int, float)) or isinstance(cost, bool):
        problems.append(
            Finding("balance_drops_by_cost", "a charged answer without a numeric `cost`", path="$.cost", **base)
        )
    if body.get("paymentSource", "USD") == "USD" and (
        not isinstance(remaining, (int, float)) or isinstance(remaining, bool)
    ):
        problems.append(
            Finding(
                "balance_drops_by_cost",
                "a USD-charged answer without a numeric `remainingBalance`",
                path="$.remainingBalance",
                **base,
            )
        )
    if not problems and isinstance(cost, (int, float)) and isinstance(remaining, (int, float)):
        who = _caller(ctx, case)
        with env.lock:
            previous = env.balances.get(who)
            env.balances[who] = float(remaining)
        if previous is not None and abs((previous - float(cost)) - float(remaining)) > 1e-6:
            problems.append(
                Finding(
                    "balance_drops_by_cost",
                    f"remainingBalance went {previous} -> {remaining} for cost {cost} "
                    f"(expected {previous - float(cost):.6f})",
                    path="$.remainingBalance",
                    **base,
                )
            )
        request = request_body(case)
        model_id = request_model(op_id, request)
        priced = env.catalog.get(model_id) if env.catalog is not None else None
        if env.catalog is not None and priced is not None and priced.unit_prices():
            ceiling = env.catalog.estimate(model_id, request_resolution(op_id, request), request_count(op_id, request))
            # an inline moderation check is billed on top of the images (documented response header)
            ceiling += _moderation_cost(response.headers.get("x-nanogpt-inline-moderation-cost-usd"))
            if float(cost) > ceiling + 1e-6:
                problems.append(
                    Finding(
                        "cost_within_catalog_price",
                        f"cost {cost} exceeds the catalog price {ceiling:.6f}",
                        path="$.cost",
                        model=str(model_id),
                        **base,
                    )
                )
    _fail(env, problems)
    return True


def _other_charge(env: CheckEnvironment, ctx: Any, case: Any, body: Any) -> None:
    """A charged answer of a non-generating operation (`cost` without `remainingBalance`) lowers the
    tracked balance, so the next generation's `remainingBalance` is compared with the right figure."""
    if not isinstance(body, dict) or "remainingBalance" in body:
        return
    cost = body.get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and body.get("currency") == "USD":
        who = _caller(ctx, case)
        with env.lock:
            if who in env.balances:
                env.balances[who] -= float(cost)


def _moderation_cost(header: Any) -> float:
    """The header's value (schemathesis responses carry header values as lists)."""
    value = header[0] if isinstance(header, list) and header else header
    try:
        return float(value) if value else 0.0
    except (TypeError, ValueError):
        return 0.0


def reset_balance_tracking(env: CheckEnvironment | None = None) -> None:
    """Forget previous balances (after the run itself changed them out of band)."""
    target = env or environment()
    with target.lock:
        target.balances.clear()


def _caller(ctx: Any, case: Any) -> str:
    """Whose balance this is: a digest of the key, whichever header carried it."""
    value = ""
    internals = getattr(ctx, "internals", None)
    for headers in (getattr(case, "headers", None) or {}, getattr(internals, "headers", None) or {}):
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        value = value or lowered.get("authorization") or lowered.get("x-api-key") or ""
    value = value[7:] if value.lower().startswith("bearer ") else value
    return hashlib.sha256(value.encode()).hexdigest()[:16]


DOMAIN_CHECKS = (nanogpt_error_contract, nanogpt_images, nanogpt_billing)
DOMAIN_CHECK_NAMES = frozenset(c.__name__ for c in DOMAIN_CHECKS)
