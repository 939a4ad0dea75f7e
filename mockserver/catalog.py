"""The model catalog: loaded once from one data file, published by the three catalog endpoints.

It also answers the per-model questions the engine asks while validating a request: which pixel
size a ``size`` / ``resolution`` / ``aspect_ratio`` means, what one image costs, how many images
and input images a model takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import orjson

from .errors import MockError, SpecError
from .spec import load_yaml

DEFAULT_CATALOG = Path(__file__).resolve().parent / "catalog.yaml"
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_STAR_SIZE = re.compile(r"^(\d{1,5})\*(\d{1,5})$")


def parse_size(text: str) -> tuple[int, int] | None:
    found = _SIZE.match(text)
    return (int(found[1]), int(found[2])) if found else None


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The route preflight every input image passes (catalog.yaml ``routes.input_images``)."""

    min_width: int
    min_height: int
    max_width: int
    max_height: int
    max_bytes: int
    formats: tuple[str, ...]

    def published(self) -> dict[str, Any]:
        return {
            "min_width": self.min_width,
            "min_height": self.min_height,
            "max_width": self.max_width,
            "max_height": self.max_height,
            "max_bytes": self.max_bytes,
            "formats": list(self.formats),
        }


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """Facts of the routes rather than of one model (catalog.yaml ``routes``)."""

    edit_default_model: str
    midjourney_model: str
    data_url_max_bytes: int
    input_images: InputLimits


def normalize_size(text: str) -> str:
    """`1024*1024` (the form of the docs' price keys) means `1024x1024`."""
    found = _STAR_SIZE.match(text)
    return f"{found[1]}x{found[2]}" if found else text


@dataclass(frozen=True)
class Model:
    """One catalog entry; field meanings are documented at the top of catalog.yaml."""

    id: str
    name: str
    description: str
    owned_by: str
    created: int
    provider_name: str
    provider_slug: str
    style: str
    capabilities: Mapping[str, bool]
    max_input_images: int
    input_max_bytes: int
    sizes: tuple[str, ...]
    default_size: str
    flexible_size: Mapping[str, int] | None
    aspect_ratios: Mapping[str, str]
    tiers: Mapping[str, int]
    qualities: tuple[str, ...]
    default_quality: str | None
    output_formats: tuple[str, ...]
    default_output_format: str
    n_max: int
    fixed_image_count: int | None
    seed: bool
    price_usd: float
    price_by_resolution: Mapping[str, float]
    rendering_speed: tuple[str, ...]
    tags: tuple[str, ...]
    icon_url: str | None
    route_inputs: InputLimits
    named_sizes: Mapping[str, str] = field(default_factory=dict)
    scale_factors: Mapping[str, int] = field(default_factory=dict)
    engine: str = ""

    @property
    def inpainting(self) -> bool:
        return bool(self.capabilities.get("inpainting"))

    @property
    def resolution_values(self) -> tuple[str, ...]:
        """Every value `resolution` / `size` accepts, as published in the catalog."""
        return (*self.sizes, *self.tiers, *self.named_sizes, *self.scale_factors, "auto")

    # -- pixel sizes -------------------------------------------------------------------------
    def pixel_size(
        self, size: str | None, aspect_ratio: str | None = None, *, param: str = "size"
    ) -> tuple[int, int, str | None]:
        """Map the request's size words to pixels; returns (width, height, tier or None)."""
        tier: str | None = None
        if size is not None:
            size = normalize_size(size)
            if size not in self.tiers and size.lower() in self.tiers:
                size = size.lower()  # `2K` is the tier `2k`
        if aspect_ratio is not None and aspect_ratio not in self.aspect_ratios:
            supported = ", ".join(self.aspect_ratios) or "none"
            raise MockError(
                "invalid_parameter_value",
                f"aspect_ratio '{aspect_ratio}' is not supported by model '{self.id}'. Supported: {supported}.",
                "aspect_ratio",
            )
        if size is None or size == "auto":
            if aspect_ratio is not None:
                w, h = _must(parse_size(self.aspect_ratios[aspect_ratio]))
                return w, h, None
            w, h = _must(parse_size(self.default_size))
            return w, h, None
        if size in self.tiers:
            tier = size
            base = self.aspect_ratios.get(aspect_ratio or "1:1") or self.default_size
            w, h = _must(parse_size(base))
            factor = self.tiers[size]
            return w * factor, h * factor, tier
        parsed = parse_size(size)
        if parsed and (
            size in self.sizes or size == self.default_size or size in self.derived_sizes or self._flexible_ok(*parsed)
        ):
            return parsed[0], parsed[1], None
        if size in self.aspect_ratios and aspect_ratio is None:
            w, h = _must(parse_size(self.aspect_ratios[size]))
            return w, h, None
        if size in self.named_sizes:
            w, h = _must(parse_size(self.named_sizes[size]))
            return w, h, None
        if size in self.scale_factors:  # without an input image: the default size, scaled
            w, h = _must(parse_size(self.default_size))
            factor = self.scale_factors[size]
            return w * factor, h * factor, size
        raise MockError(
            "invalid_parameter_value",
            f"{param} '{size}' is not supported by model '{self.id}'. Supported: {self._size_help()}.",
            param,
        )

    @cached_property
    def derived_sizes(self) -> frozenset[str]:
        """Concrete sizes that aspect ratios and tiers produce; asked for directly they are fine too."""
        out = set()
        for base in self.aspect_ratios.values():
            w, h = _must(parse_size(base))
            for factor in (*self.tiers.values(), 1):
                out.add(f"{w * factor}x{h * factor}")
        return frozenset(out)

    def _flexible_ok(self, width: int, height: int) -> bool:
        flex = self.flexible_size
        if not flex:
            return False
        step = flex.get("multiple_of", 1)
        return all(flex["min"] <= v <= flex["max"] and v % step == 0 for v in (width, height))

    def _size_help(self) -> str:
        words = list(self.resolution_values)
        words += [r for r in self.aspect_ratios if r not in words and not self.sizes]
        text = ", ".join(words)
        if self.flexible_size:
            f = self.flexible_size
            text += f"; or any WxH from {f['min']} to {f['max']} in steps of {f.get('multiple_of', 1)}"
        return text

    # -- money -------------------------------------------------------------------------------
    @cached_property
    def _prices(self) -> dict[str | None, Decimal]:
        """Prices as Decimal, converted once: money is never added up in floats."""
        prices: dict[str | None, Decimal] = {k: Decimal(str(v)) for k, v in self.price_by_resolution.items()}
        prices[None] = Decimal(str(self.price_usd))
        return prices

    def price(self, width: int, height: int, tier: str | None) -> Decimal:
        """USD for one image of this size (a tier or WxH entry of price_by_resolution, else price_usd)."""
        prices = self._prices
        if tier is not None and tier in prices:
            return prices[tier]
        return prices.get(f"{width}x{height}", prices[None])

    def check_quality(self, quality: str | None) -> None:
        if quality is not None and quality not in self.qualities:
            supported = ", ".join(self.qualities) or "none (this model has no quality setting)"
            raise MockError(
                "invalid_parameter_value",
                f"quality '{quality}' is not supported by model '{self.id}'. Supported: {supported}.",
                "quality",
            )

    def check_output_format(self, output_format: str) -> None:
        if output_format not in self.output_formats:
            raise MockError(
                "invalid_parameter_value",
                f"output_format '{output_format}' is not supported by model '{self.id}'. "
                f"Supported: {', '.join(self.output_formats)}.",
                "output_format",
            )

    def image_count(self, n: int, param: str = "n") -> int:
        if self.fixed_image_count:
            return self.fixed_image_count
        if n < 1 or n > self.n_max:
            raise MockError(
                "invalid_parameter_value",
                f"{param} must be between 1 and {self.n_max} for model '{self.id}', got {n}.",
                param,
            )
        return n

    # -- publication -------------------------------------------------------------------------
    def supported_parameters(self) -> dict[str, Any]:
        if self.style == "legacy":
            out: dict[str, Any] = {
                "resolutions": list(
                    self.resolution_values if not self.tiers else [*self.aspect_ratios, *self.tiers, *self.sizes]
                ),
                "max_images": self.n_max,
            }
            if self.fixed_image_count:
                out["fixed_image_count"] = self.fixed_image_count
            if self.rendering_speed:
                out["rendering_speed"] = list(self.rendering_speed)
            if self.max_input_images:
                out["max_input_images"] = self.max_input_images
                out["input_image_constraints"] = self.input_constraints()
            return out
        typed: dict[str, Any] = {
            "resolution": {"type": "enum", "values": list(self.resolution_values), "default": self.default_size}
            if self.sizes or not self.tiers
            else {"type": "enum", "values": [*self.tiers, "auto"], "default": next(iter(self.tiers))},
            "n": {"type": "range", "min": 1, "max": self.n_max, "default": 1},
            "output_format": {
                "type": "enum",
                "values": list(self.output_formats),
                "default": self.default_output_format,
            },
        }
        if self.aspect_ratios:
            typed["aspect_ratio"] = {
                "type": "enum",
                "values": list(self.aspect_ratios),
                "default": next(iter(self.aspect_ratios)),
            }
        if self.qualities:
            typed["quality"] = {
                "type": "enum",
                "values": list(self.qualities),
                "default": self.default_quality or self.qualities[0],
            }
        if self.max_input_images:
            typed["input_references"] = {"type": "range", "min": 0, "max": self.max_input_images}
        if self.seed:
            typed["seed"] = {"type": "range", "min": 0, "max": 4294967295}
        return typed

    def input_constraints(self) -> dict[str, Any]:
        constraints: dict[str, Any] = {
            "max_items": self.max_input_images,
            "route": {
                **self.route_inputs.published(),
                "source": "route-preflight",
                "note": "NanoGPT route-level validation before provider submission.",
            },
        }
        if self.input_max_bytes < self.route_inputs.max_bytes:
            constraints["provider"] = {"max_bytes": self.input_max_bytes, "source": "provider-docs"}
        return constraints

    def architecture(self) -> dict[str, Any]:
        inputs = ["text", "image"] if self.max_input_images else ["text"]
        return {"input_modalities": inputs, "output_modalities": ["image"]}

    def pricing_rows(self) -> list[dict[str, Any]]:
        keys = list(self.tiers) or [self.default_size]
        rows = [
            {
                "billable": "output_image",
                "unit": "image",
                "cost_usd": self.price_by_resolution.get(k, self.price_usd),
                "resolution": k,
            }
            for k in keys
        ]
        rows += [
            {"billable": "output_image", "unit": "image", "cost_usd": v, "resolution": k}
            for k, v in self.price_by_resolution.items()
            if k not in keys
        ]
        return rows

    # -- the old /api/models catalog (the shape public clients read) ---------------------------
    def old_catalog_entry(self) -> dict[str, Any]:
        """This model as `models.image[<id>]` of `GET /api/models` (see the spec for the field choices)."""
        resolutions = [{"value": v, "comment": self._comment(v)} for v in self.resolution_values]
        cost: dict[str, float] = {}
        for value in self.resolution_values:
            w, h, tier = self.pixel_size(value)
            cost[value] = float(self.price(w, h, tier))
        caps = self.capabilities
        generates, edits = bool(caps.get("image_generation")), bool(caps.get("image_to_image"))
        entry: dict[str, Any] = {
            "model": self.id,
            "name": self.name,
            "description": self.description,
            "cost": cost,
            "maxImages": self.fixed_image_count or self.n_max,
            "resolutions": resolutions,
            "engine": self.engine,
            "provider": self.provider_name,
            "iconLabel": "both" if generates and edits else "image-to-image" if edits else "text-to-image",
            "censored": not caps.get("nsfw"),
            "supportsMultipleImg2Img": self.max_input_images > 1,
            "dateAdded": datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "additionalParams": self._additional_params(),
            "defaultSettings": {"resolution": self.default_size, "nImages": 1}
            | ({"quality": self.default_quality or self.qualities[0]} if self.qualities else {}),
        }
        if self.max_input_images:
            entry["inputImageConstraints"] = {"maxBytes": self.input_max_bytes, "maxItems": self.max_input_images}
        return entry

    def _comment(self, value: str) -> str:
        if value == "auto":
            return f"Model default ({self.default_size})"
        if value in self.tiers:
            return f"{value.upper()} tier"
        if value in self.named_sizes:
            return f"{value} ({self.named_sizes[value]})"
        if value in self.scale_factors:
            return f"Upscale {self.scale_factors[value]}x"
        w, h, _ = self.pixel_size(value)
        return f"{w}x{h}"

    def _additional_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.qualities:
            params["quality"] = {
                "label": "Quality",
                "type": "select",
                "default": self.default_quality or self.qualities[0],
                "options": [{"value": q, "label": q.capitalize()} for q in self.qualities],
            }
        if self.rendering_speed:
            params["rendering_speed"] = {
                "label": "Rendering speed",
                "type": "select",
                "default": self.rendering_speed[0],
                "options": [{"value": v, "label": v.capitalize()} for v in self.rendering_speed],
            }
        return params


@dataclass(frozen=True)
class ModerationModel:
    """One moderation model of inline moderation (catalog `moderation_models`)."""

    id: str
    owned_by: str
    created: int
    context_length: int
    text: bool
    image: bool
    batch: bool
    prompt_usd_per_million: Decimal
    completion_usd_per_million: Decimal
    image_tokens: int

    def body(self, detailed: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}
        if detailed:
            item["context_length"] = self.context_length
            item["capabilities"] = {"text": self.text, "image": self.image, "batch": self.batch}
            item["pricing"] = {
                "prompt": float(self.prompt_usd_per_million),
                "completion": float(self.completion_usd_per_million),
                "currency": "USD",
                "unit": "per_million_tokens",
            }
        return item

    def tokens(self, prompt: str, images: int) -> int:
        """The mock's token count of one moderation input: ceil(characters / 4) plus a fixed count per image."""
        return max(1, -(-len(prompt) // 4)) + images * self.image_tokens

    def cost(self, tokens: int) -> Decimal:
        return self.prompt_usd_per_million * tokens / Decimal(1_000_000)


def _must(value: tuple[int, int] | None) -> tuple[int, int]:
    if value is None:
        raise SpecError("catalog holds a malformed WxH size")
    return value


@dataclass(frozen=True)
class Catalog:
    models: tuple[Model, ...]
    routes: RouteFacts
    generated_at: str = "2026-11-01T00:00:00.000Z"
    by_id: Mapping[str, Model] = field(default_factory=dict, repr=False)
    moderation_models: tuple[ModerationModel, ...] = ()
    moderation_default: str | None = None
    nsfw_classifier: Mapping[str, Any] = field(default_factory=dict)
    x402: Mapping[str, Any] = field(default_factory=dict)

    def moderation_model(self, model_id: str) -> ModerationModel:
        for model in self.moderation_models:
            if model.id == model_id:
                return model
        raise MockError("model_not_found", f"Moderation model '{model_id}' not found.", "moderation")

    def moderation_models_body(self, detailed: bool) -> dict[str, Any]:
        return {"object": "list", "data": [m.body(detailed) for m in self.moderation_models]}

    def old_catalog_body(self) -> dict[str, Any]:
        """`GET /api/models` and `GET /api/models/image`: `models.image` keyed by model ID."""
        return {"models": {"image": {m.id: m.old_catalog_entry() for m in self.models}}}

    def get(self, model_id: str) -> Model:
        try:
            return self.by_id[model_id]
        except KeyError:
            raise MockError("model_not_found", f"Model '{model_id}' not found.", "model") from None

    @cached_property
    def encoded(self) -> Mapping[str, bytes]:
        """The bodies that never change while the catalog lives, JSON-encoded once."""
        return {
            "models": orjson.dumps(self.images_models_body()),
            "legacy_detailed": orjson.dumps(self.legacy_models_body(True)),
            "legacy_basic": orjson.dumps(self.legacy_models_body(False)),
            "old": orjson.dumps(self.old_catalog_body()),
        }

    def cheapest(self) -> Model:
        return min(self.models, key=lambda m: (m.price_usd, m.id))

    # -- the three published bodies ---------------------------------------------------------
    def images_models_body(self) -> dict[str, Any]:
        data = [
            {
                "id": m.id,
                "object": "model",
                "name": m.name,
                "description": m.description,
                "created": m.created,
                "owned_by": m.owned_by,
                "architecture": m.architecture(),
                "supported_parameters": m.supported_parameters(),
                "supports_streaming": False,
                "endpoints": f"/api/v1/images/models/{m.id}/endpoints",
                "capabilities": dict(m.capabilities),
                "category": "image",
            }
            for m in self.models
        ]
        return {"object": "list", "data": data, "meta": {"count": len(data), "generated_at": self.generated_at}}

    def endpoints_body(self, model_id: str) -> dict[str, Any]:
        m = self.get(model_id)
        endpoint: dict[str, Any] = {
            "provider_name": m.provider_name,
            "provider_slug": m.provider_slug,
            "provider_tag": None,
            "supported_parameters": m.supported_parameters(),
            "allowed_passthrough_parameters": [],
            "supports_streaming": False,
            "pricing": m.pricing_rows(),
        }
        if m.max_input_images:
            endpoint["input_reference_constraints"] = m.input_constraints()
        return {"id": m.id, "endpoints": [endpoint]}

    def legacy_models_body(self, detailed: bool) -> dict[str, Any]:
        data: list[dict[str, Any]] = []
        for m in self.models:
            item: dict[str, Any] = {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
            if detailed:
                modality = "text+image->image" if m.max_input_images else "text->image"
                per_image = {
                    k.replace("x", "*"): v for k, v in [(m.default_size, m.price_usd), *m.price_by_resolution.items()]
                }
                item.update(
                    {
                        "name": m.name,
                        "description": m.description,
                        "architecture": {"modality": modality, **m.architecture()},
                        "pricing": {"per_image": per_image, "currency": "USD"},
                        "capabilities": dict(m.capabilities),
                        "supported_parameters": m.supported_parameters()
                        if m.style == "legacy"
                        else {"resolutions": list(m.resolution_values), "max_images": m.n_max},
                        "icon_url": m.icon_url or f"/icons/{m.owned_by}.svg",
                        "tags": list(m.tags),
                        "category": "image",
                    }
                )
            data.append(item)
        return {"object": "list", "data": data, "meta": {"count": len(data), "generated_at": self.generated_at}}


def _model(raw: Mapping[str, Any], defaults: Mapping[str, Any], routes: RouteFacts) -> Model:
    merged = {**defaults, **raw}
    try:
        caps = {**defaults.get("capabilities", {}), **raw.get("capabilities", {})}
        provider = merged.get("provider", {})
        model = Model(
            id=str(merged["id"]),
            name=str(merged["name"]),
            description=str(merged.get("description", "")),
            owned_by=str(merged["owned_by"]),
            created=int(merged["created"]),
            provider_name=str(provider.get("name", merged["owned_by"])),
            provider_slug=str(provider.get("slug", merged["owned_by"])),
            style=str(merged.get("style", "typed")),
            capabilities=caps,
            max_input_images=int(merged.get("max_input_images", 0)),
            input_max_bytes=int(merged.get("input_max_bytes", routes.input_images.max_bytes)),
            sizes=tuple(str(s) for s in merged.get("sizes", [])),
            default_size=str(merged["default_size"]),
            flexible_size=merged.get("flexible_size"),
            aspect_ratios={str(k): str(v) for k, v in merged.get("aspect_ratios", {}).items()},
            tiers={str(k): int(v) for k, v in merged.get("tiers", {}).items()},
            qualities=tuple(merged.get("qualities", [])),
            default_quality=merged.get("default_quality"),
            output_formats=tuple(merged["output_formats"]),
            default_output_format=str(merged.get("default_output_format") or merged["output_formats"][0]),
            n_max=int(merged.get("n_max", 1)),
            fixed_image_count=merged.get("fixed_image_count"),
            seed=bool(merged.get("seed", True)),
            price_usd=float(merged["price_usd"]),
            price_by_resolution={str(k): float(v) for k, v in merged.get("price_by_resolution", {}).items()},
            rendering_speed=tuple(merged.get("rendering_speed", [])),
            tags=tuple(merged.get("tags", [])),
            icon_url=merged.get("icon_url"),
            route_inputs=routes.input_images,
            named_sizes={str(k): str(v) for k, v in merged.get("named_sizes", {}).items()},
            scale_factors={str(k): int(v) for k, v in merged.get("scale_factors", {}).items()},
            engine=str(merged.get("engine", provider.get("slug", merged["owned_by"]))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"catalog entry {raw.get('id')!r} is malformed: {exc!r}") from exc
    for text in (*model.sizes, model.default_size, *model.aspect_ratios.values(), *model.named_sizes.values()):
        if parse_size(text) is None:
            raise SpecError(f"catalog entry {model.id!r}: {text!r} is not a WxH size")
    return model


def _routes(raw: Any, path: Path) -> RouteFacts:
    try:
        limits = raw["input_images"]
        return RouteFacts(
            edit_default_model=str(raw["edit_default_model"]),
            midjourney_model=str(raw["midjourney_model"]),
            data_url_max_bytes=int(raw["data_url_max_bytes"]),
            input_images=InputLimits(
                min_width=int(limits["min_width"]),
                min_height=int(limits["min_height"]),
                max_width=int(limits["max_width"]),
                max_height=int(limits["max_height"]),
                max_bytes=int(limits["max_bytes"]),
                formats=tuple(str(f) for f in limits["formats"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{path}: the 'routes' section is missing or malformed: {exc!r}") from exc


@lru_cache(maxsize=8)
def load_catalog(path: Path | None = None) -> Catalog:
    """Load the catalog file once per path."""
    raw = load_yaml(path or DEFAULT_CATALOG)
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise SpecError(f"{path or DEFAULT_CATALOG}: expected a mapping with a 'models' list")
    defaults = raw.get("defaults", {})
    # a catalog without its own `routes` (one written by `catalog pull`, say) keeps the built-in ones
    routes = (
        _routes(raw["routes"], path or DEFAULT_CATALOG) if "routes" in raw or path is None else load_catalog().routes
    )
    models = tuple(_model(m, defaults, routes) for m in raw["models"])
    by_id = {m.id: m for m in models}
    if len(by_id) != len(models):
        raise SpecError("duplicate model id in the catalog")
    for name in (routes.edit_default_model, routes.midjourney_model):
        if name not in by_id:
            raise SpecError(f"catalog routes name model {name!r}, which the catalog does not hold")
    moderation = raw.get("moderation_models") or {}
    return Catalog(
        models=models,
        routes=routes,
        by_id=by_id,
        generated_at=str(raw.get("generated_at", Catalog.generated_at)),
        moderation_models=tuple(_moderation_model(m) for m in moderation.get("models", [])),
        moderation_default=moderation.get("default"),
        nsfw_classifier=raw.get("nsfw_classifier") or {},
        x402=raw.get("x402") or {},
    )


_REQUIRED_FIELDS = ("id", "name", "owned_by", "created", "default_size", "price_usd")


def _is_number(value: Any, *, whole: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number.is_integer() if whole else number == number  # NaN is not a price


def _field_problems(merged: Mapping[str, Any]) -> list[str]:
    """What ``_model`` would trip on, field by field; fields it does not know are not looked at."""
    out: list[str] = []

    def size(field_name: str, value: Any) -> None:
        if not isinstance(value, str) or parse_size(value) is None:
            out.append(f"{field_name} {value!r} is not a WxH size")

    if "created" in merged and not _is_number(merged["created"], whole=True):
        out.append(f"created {merged['created']!r} is not a whole number")
    if "price_usd" in merged and (not _is_number(merged["price_usd"]) or float(merged["price_usd"]) < 0):
        out.append(f"price_usd {merged['price_usd']!r} is not a non-negative number")
    for name, least in (("n_max", 1), ("max_input_images", 0), ("input_max_bytes", 1), ("fixed_image_count", 1)):
        value = merged.get(name)
        if value is not None and (not _is_number(value, whole=True) or int(float(value)) < least):
            out.append(f"{name} {value!r} is not a whole number >= {least}")
    if merged.get("default_size") not in (None, ""):
        size("default_size", merged["default_size"])
    sizes = merged.get("sizes", [])
    if not isinstance(sizes, list):
        out.append("sizes is not a list")
    else:
        for value in sizes:
            size("sizes entry", value)
    for name, check in (("aspect_ratios", "size"), ("tiers", "whole"), ("price_by_resolution", "number")):
        table = merged.get(name, {})
        if not isinstance(table, Mapping):
            out.append(f"{name} is not a mapping")
            continue
        for key, value in table.items():
            if check == "size":
                size(f"{name}[{key}]", value)
            elif not _is_number(value, whole=check == "whole"):
                out.append(f"{name}[{key}] {value!r} is not a {'whole number' if check == 'whole' else 'number'}")
    for name in ("capabilities", "provider"):
        if not isinstance(merged.get(name, {}), Mapping):
            out.append(f"{name} is not a mapping")
    flex = merged.get("flexible_size")
    if flex is not None and not (isinstance(flex, Mapping) and all(_is_number(flex.get(k)) for k in ("min", "max"))):
        out.append("flexible_size needs numeric min and max")
    for name in ("qualities", "output_formats", "tags", "rendering_speed"):
        if not isinstance(merged.get(name, []), list):
            out.append(f"{name} is not a list")
    return out


def catalog_problems(raw: Any) -> list[str]:
    """Every problem of a parsed catalog document, each naming its place; ``[]`` when it is usable.

    Tolerant of fields it does not know (the catalog grows); it checks what loading needs.
    """
    if not isinstance(raw, Mapping):
        return ["the catalog is not a mapping with a 'models' list"]
    problems: list[str] = []
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, Mapping):
        problems.append("defaults is not a mapping")
        defaults = {}
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        return [*problems, "'models' is missing, empty or not a list"]
    seen: set[str] = set()
    for index, entry in enumerate(models):
        where = f"models[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} is not a mapping")
            continue
        if entry.get("id") not in (None, ""):
            where += f" ({entry['id']})"
            if str(entry["id"]) in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(str(entry["id"]))
        merged = {**defaults, **entry}
        missing = [name for name in _REQUIRED_FIELDS if merged.get(name) in (None, "")]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        problems += [f"{where}: {problem}" for problem in _field_problems(merged)]
    return problems + _routes_problems(raw, seen)


def _routes_problems(raw: Mapping[str, Any], model_ids: set[str]) -> list[str]:
    """The ``routes`` section (or, when absent, the built-in one) and the models it names."""
    if "routes" not in raw:
        routes: Any = load_catalog().routes
        named = {"edit_default_model": routes.edit_default_model, "midjourney_model": routes.midjourney_model}
        return [
            f"routes (built in) name {field_name} {model!r}, which this catalog does not hold"
            for field_name, model in named.items()
            if model not in model_ids
        ]
    section = raw["routes"]
    if not isinstance(section, Mapping):
        return ["routes is not a mapping"]
    out: list[str] = []
    missing = [k for k in ("edit_default_model", "midjourney_model", "data_url_max_bytes") if k not in section]
    limits = section.get("input_images")
    if not isinstance(limits, Mapping):
        missing.append("input_images")
    else:
        keys = ("min_width", "min_height", "max_width", "max_height", "max_bytes", "formats")
        missing += [f"input_images.{k}" for k in keys if k not in limits]
        out += [
            f"routes: input_images.{k} {limits[k]!r} is not a whole number"
            for k in keys[:-1]
            if k in limits and not _is_number(limits[k], whole=True)
        ]
    if missing:
        out.insert(0, f"routes: missing {', '.join(missing)}")
    if "data_url_max_bytes" in section and not _is_number(section["data_url_max_bytes"], whole=True):
        out.append(f"routes: data_url_max_bytes {section['data_url_max_bytes']!r} is not a whole number")
    for field_name in ("edit_default_model", "midjourney_model"):
        model = section.get(field_name)
        if model is not None and str(model) not in model_ids:
            out.append(f"routes: {field_name} {model!r} is not a model of this catalog")
    return out


def _moderation_model(raw: Mapping[str, Any]) -> ModerationModel:
    try:
        caps, pricing = raw.get("capabilities", {}), raw.get("pricing", {})
        return ModerationModel(
            id=str(raw["id"]),
            owned_by=str(raw["owned_by"]),
            created=int(raw["created"]),
            context_length=int(raw["context_length"]),
            text=bool(caps.get("text", True)),
            image=bool(caps.get("image", False)),
            batch=bool(caps.get("batch", False)),
            prompt_usd_per_million=Decimal(str(pricing.get("prompt", 0))),
            completion_usd_per_million=Decimal(str(pricing.get("completion", 0))),
            image_tokens=int(raw.get("image_tokens", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"moderation model {raw.get('id')!r} is malformed: {exc!r}") from exc
