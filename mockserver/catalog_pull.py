"""``nanogpt-mock catalog pull``: build a catalog file from a NanoGPT-compatible server's free catalogs.

It reads the three unauthenticated catalog endpoints (``GET /api/v1/images/models``, each model's
``GET /api/v1/images/models/{id}/endpoints`` and the legacy ``GET /api/v1/image-models?detailed=true``),
maps what it can onto the catalog format (see the header of ``catalog.yaml``) and keeps every upstream
record whole under ``upstream`` so no field is lost. The result loads with ``nanogpt-mock --catalog FILE``.

Progress goes to stderr; a bad URL or an unexpected body ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx
import yaml

from .catalog import DEFAULT_CATALOG, load_catalog, parse_size
from .errors import SpecError
from .spec import load_yaml

USER_AGENT = "nanogpt-mock catalog pull"
_TIER = re.compile(r"^(\d{1,2})[kK]$")
_RATIO = re.compile(r"^(\d{1,2}(?:\.\d+)?):(\d{1,2}(?:\.\d+)?)$")
_SCALE = re.compile(r"^(\d{1,2})x$")
_STAR = re.compile(r"^(\d{1,5})\*(\d{1,5})$")
# fal.ai's named image sizes (the ones third-party clients send as `size`)
_FAL_NAMED = {
    "square_hd": "1024x1024",
    "square": "512x512",
    "portrait_4_3": "768x1024",
    "portrait_16_9": "576x1024",
    "landscape_4_3": "1024x768",
    "landscape_16_9": "1024x576",
}


class PullError(Exception):
    """A one-line reason the pull cannot go on (bad URL, unreachable server, unexpected body)."""


def _get_json(client: httpx.Client, path: str, params: Mapping[str, str] | None = None) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.InvalidURL as exc:
        raise PullError(f"invalid base URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise PullError(f"GET {client.base_url}{path.lstrip('/')}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise PullError(f"GET {response.request.url}: HTTP {response.status_code}, expected 200")
    try:
        return response.json()
    except ValueError:
        raise PullError(f"GET {response.request.url}: the body is not JSON") from None


def _data_list(body: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PullError(f"{where}: expected a JSON object with a 'data' list")
    items = [item for item in body["data"] if isinstance(item, dict) and isinstance(item.get("id"), str)]
    if len(items) != len(body["data"]):
        raise PullError(f"{where}: every item of 'data' must be an object with a string 'id'")
    return items


def _values(params: Mapping[str, Any], typed: str, legacy: str) -> list[str]:
    """Allowed values of a parameter, from a typed enum descriptor or a legacy list."""
    descriptor = params.get(typed)
    if isinstance(descriptor, dict) and isinstance(descriptor.get("values"), list):
        return [str(v) for v in descriptor["values"]]
    if isinstance(params.get(legacy), list):
        return [str(v) for v in params[legacy]]
    return []


def _default(params: Mapping[str, Any], name: str) -> Any:
    descriptor = params.get(name)
    return descriptor.get("default") if isinstance(descriptor, dict) else None


def _ratio_size(ratio: str, megapixels: float = 1.0) -> str:
    """A WxH for an aspect ratio at about one megapixel, sides multiples of 16."""
    found = _RATIO.match(ratio)
    assert found is not None
    w, h = float(found[1]), float(found[2])
    height = math.sqrt(megapixels * 1024 * 1024 * h / w)
    width = height * w / h
    return f"{max(16, round(width / 16) * 16)}x{max(16, round(height / 16) * 16)}"


def _max_inputs(params: Mapping[str, Any]) -> int:
    refs = params.get("input_references")
    if isinstance(refs, dict) and isinstance(refs.get("max"), int | float):
        return int(refs["max"])
    if isinstance(params.get("max_input_images"), int):
        return int(params["max_input_images"])
    constraints = params.get("input_image_constraints")
    if isinstance(constraints, dict) and isinstance(constraints.get("max_items"), int):
        return int(constraints["max_items"])
    return 0


def _n_max(params: Mapping[str, Any]) -> int:
    n = params.get("n")
    if isinstance(n, dict) and isinstance(n.get("max"), int | float):
        return int(n["max"])
    for key in ("max_images", "max_output_images"):
        if isinstance(params.get(key), int):
            return int(params[key])
    return 1


def to_catalog_model(
    item: Mapping[str, Any], endpoints: Mapping[str, Any] | None, legacy: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One catalog entry from the upstream records of one model (all kept under `upstream`)."""
    params: dict[str, Any] = dict(item.get("supported_parameters") or {})
    endpoint: dict[str, Any] = {}
    if endpoints and isinstance(endpoints.get("endpoints"), list) and endpoints["endpoints"]:
        endpoint = dict(endpoints["endpoints"][0])
    typed = any(isinstance(v, dict) and v.get("type") in ("enum", "range") for v in params.values())
    sizes: list[str] = []
    tiers: dict[str, int] = {}
    ratios: dict[str, str] = {}
    named: dict[str, str] = {}
    scales: dict[str, int] = {}
    for value in _values(params, "resolution", "resolutions"):
        value = _STAR.sub(r"\1x\2", value)
        if parse_size(value):
            sizes.append(value)
        elif tier := _TIER.match(value):
            tiers[value.lower()] = int(tier[1])
        elif _RATIO.match(value):
            ratios[value] = _ratio_size(value)
        elif value in _FAL_NAMED:
            named[value] = _FAL_NAMED[value]
        elif scale := _SCALE.match(value):
            scales[value] = int(scale[1])
    for ratio in _values(params, "aspect_ratio", "aspect_ratios"):
        if _RATIO.match(ratio) and ratio not in ratios:
            ratios[ratio] = _ratio_size(ratio)
    default = _default(params, "resolution")
    default_size = (
        str(default)
        if isinstance(default, str) and parse_size(default)
        else (sizes[0] if sizes else next(iter(ratios.values()), "1024x1024"))
    )
    prices: dict[str, float] = {}
    for row in endpoint.get("pricing") or []:
        if isinstance(row, dict) and isinstance(row.get("cost_usd"), int | float):
            prices[str(row.get("resolution") or default_size)] = float(row["cost_usd"])
    if not prices and legacy and isinstance((legacy.get("pricing") or {}).get("per_image"), dict):
        for key, value in legacy["pricing"]["per_image"].items():
            if isinstance(value, int | float):
                prices[_STAR.sub(r"\1x\2", str(key))] = float(value)
    base_price = prices.get(default_size, prices.get(next(iter(tiers), ""), min(prices.values(), default=0.0)))
    capabilities = dict(item.get("capabilities") or (legacy or {}).get("capabilities") or {})
    provider_name = str(endpoint.get("provider_name") or item.get("owned_by") or "unknown")
    entry: dict[str, Any] = {
        "id": item["id"],
        "name": str(item.get("name") or item["id"]),
        "description": str(item.get("description") or ""),
        "owned_by": str(item.get("owned_by") or "unknown"),
        "created": int(item.get("created") or 0),
        "provider": {"name": provider_name, "slug": str(endpoint.get("provider_slug") or provider_name.lower())},
        "style": "typed" if typed else "legacy",
        "capabilities": {k: bool(v) for k, v in capabilities.items()},
        "max_input_images": _max_inputs(params),
        "sizes": sizes,
        "default_size": default_size,
        "n_max": _n_max(params),
        "price_usd": base_price,
    }
    constraints = params.get("input_image_constraints") or endpoint.get("input_reference_constraints") or {}
    provider_limit = (constraints.get("provider") or {}).get("max_bytes") if isinstance(constraints, dict) else None
    if isinstance(provider_limit, int):
        entry["input_max_bytes"] = provider_limit
    optional: dict[str, Any] = {
        "aspect_ratios": ratios,
        "tiers": tiers,
        "named_sizes": named,
        "scale_factors": scales,
        "qualities": _values(params, "quality", "qualities"),
        "rendering_speed": _values(params, "rendering_speed", "rendering_speed"),
        "price_by_resolution": {k: v for k, v in prices.items() if v != base_price},
    }
    formats = _values(params, "output_format", "output_formats")
    if formats:
        optional["output_formats"] = formats
    quality_default = _default(params, "quality")
    if isinstance(quality_default, str):
        optional["default_quality"] = quality_default
    if isinstance(params.get("fixed_image_count"), int):
        optional["fixed_image_count"] = params["fixed_image_count"]
    if "seed" not in params and typed:
        optional["seed"] = False
    for key in ("tags", "icon_url"):
        if (legacy or {}).get(key):
            optional[key] = legacy[key] if legacy else None
    entry.update({k: v for k, v in optional.items() if v})
    entry["upstream"] = {"catalog": dict(item)} | ({"endpoints": dict(endpoints)} if endpoints else {})
    if legacy:
        entry["upstream"]["legacy"] = dict(legacy)
    return entry


def pull(base_url: str, *, progress: Callable[[str], None], timeout: float = 30.0) -> dict[str, Any]:
    """Fetch the three free catalogs of `base_url` and answer the catalog document."""
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise PullError(f"invalid base URL {base_url!r}: expected http(s)://host[:port]")
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    with httpx.Client(base_url=base_url.rstrip("/") + "/", timeout=timeout, headers=headers) as client:
        progress(f"GET {base_url.rstrip('/')}/api/v1/images/models")
        items = _data_list(_get_json(client, "api/v1/images/models"), "GET /api/v1/images/models")
        if not items:
            raise PullError("GET /api/v1/images/models: the catalog lists no models")
        progress(f"  {len(items)} models")
        progress("GET /api/v1/image-models?detailed=true")
        legacy_body = _get_json(client, "api/v1/image-models", {"detailed": "true"})
        legacy = {m["id"]: m for m in _data_list(legacy_body, "GET /api/v1/image-models")}
        models = []
        width = len(str(len(items)))
        for index, item in enumerate(items, 1):
            path = f"api/v1/images/models/{quote(item['id'], safe='/')}/endpoints"
            progress(f"[{index:>{width}}/{len(items)}] {item['id']}")
            endpoints = _get_json(client, path)
            if not isinstance(endpoints, dict) or not isinstance(endpoints.get("endpoints"), list):
                raise PullError(f"GET /{path}: expected a JSON object with an 'endpoints' list")
            models.append(to_catalog_model(item, endpoints, legacy.get(item["id"])))
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"generated_at": generated, "source": base_url, **mock_sections(models), "models": models}


def mock_sections(models: list[dict[str, Any]]) -> dict[str, Any]:
    """What a server's catalogs do not publish, from the built-in catalog: the route facts (pointed at
    pulled models), the defaults, and the moderation, NSFW and x402 data."""
    builtin = load_yaml(DEFAULT_CATALOG)
    ids = [m["id"] for m in models]
    routes = dict(builtin["routes"])
    for name, fallback in (
        ("edit_default_model", next((m["id"] for m in models if m["max_input_images"]), ids[0])),
        ("midjourney_model", ids[0]),
    ):
        if routes[name] not in ids:
            routes[name] = fallback
    sections = {"routes": routes, "defaults": builtin["defaults"]}
    return sections | {k: builtin[k] for k in ("moderation_models", "nsfw_classifier", "x402") if k in builtin}


def write_catalog(document: Mapping[str, Any], out: Path) -> None:
    header = (
        f"# Pulled by `nanogpt-mock catalog pull` from {document['source']} at {document['generated_at']}.\n"
        "# Format: see the header of mockserver/catalog.yaml; `upstream` keeps the server's records whole.\n"
        "# routes, defaults, moderation_models, nsfw_classifier, x402: the built-in catalog's (not published).\n"
    )
    out.write_text(header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True), encoding="utf-8")


def main(argv: Sequence[str] | None = None, *, stderr: TextIO | None = None) -> int:
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="nanogpt-mock catalog pull",
        description="Write a catalog file (for --catalog) from a NanoGPT-compatible server's free catalogs.",
    )
    parser.add_argument("--base-url", required=True, help="the server, e.g. https://nano-gpt.com")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the catalog file to write (YAML)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    try:
        document = pull(args.base_url, progress=progress, timeout=args.timeout)
        write_catalog(document, args.output)
        count = len(load_catalog.__wrapped__(args.output).models)  # uncached: the file was just written
    except PullError as exc:
        print(f"nanogpt-mock catalog pull: {exc}", file=err, flush=True)
        return 2
    except SpecError as exc:
        print(f"nanogpt-mock catalog pull: the pulled catalog does not load: {exc}", file=err, flush=True)
        return 2
    except OSError as exc:
        print(f"nanogpt-mock catalog pull: cannot write {args.output}: {exc.strerror or exc}", file=err, flush=True)
        return 2
    progress(f"wrote {count} models to {args.output}")
    return 0
