"""The target's own catalog, as it publishes it: models, their supported parameters and prices.

Requests are built from this (not from the mock's data file), so the same strategies are valid
against the mock and against the live API, and a request can be priced before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mockserver.catalog import parse_size

from .target import Target


def parse_wxh(text: Any) -> tuple[int, int] | None:
    """``WxH`` as pixels, for any JSON value a catalog or request may hold (the mock's own parser)."""
    return parse_size(str(text)) if text is not None else None


@dataclass
class ModelInfo:
    """What a model claims, normalised over the typed and the legacy ``supported_parameters`` styles."""

    id: str
    raw_params: dict[str, Any]
    capabilities: dict[str, Any]
    pricing: list[dict[str, Any]] = field(default_factory=list)
    legacy_per_image: dict[str, Any] = field(default_factory=dict)

    @property
    def typed(self) -> bool:
        return any(isinstance(v, dict) and v.get("type") in ("enum", "range") for v in self.raw_params.values())

    def enum(self, name: str) -> list[Any]:
        value = self.raw_params.get(name)
        return list(value.get("values") or []) if isinstance(value, dict) and value.get("type") == "enum" else []

    @property
    def resolutions(self) -> list[str]:
        return [str(v) for v in (self.enum("resolution") or self.raw_params.get("resolutions") or [])]

    @property
    def wxh_sizes(self) -> list[str]:
        return [r for r in self.resolutions if parse_wxh(r)]

    @property
    def default_resolution(self) -> str | None:
        value = self.raw_params.get("resolution")
        return str(value["default"]) if isinstance(value, dict) and value.get("default") else None

    @property
    def n_max(self) -> int:
        value = self.raw_params.get("n")
        if isinstance(value, dict) and value.get("max") is not None:
            return int(value["max"])
        return int(self.raw_params.get("max_images") or self.raw_params.get("max_output_images") or 1)

    @property
    def fixed_image_count(self) -> int | None:
        value = self.raw_params.get("fixed_image_count")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def output_formats(self) -> list[str]:
        return [str(v) for v in self.enum("output_format")] or ["png"]

    @property
    def qualities(self) -> list[str]:
        return [str(v) for v in self.enum("quality")]

    @property
    def aspect_ratios(self) -> list[str]:
        return [str(v) for v in self.enum("aspect_ratio")]

    @property
    def max_input_images(self) -> int:
        value = self.raw_params.get("input_references")
        if isinstance(value, dict) and value.get("max") is not None:
            return int(value["max"])
        return int(self.raw_params.get("max_input_images") or 0)

    @property
    def inpainting(self) -> bool:
        return bool(self.capabilities.get("inpainting"))

    @property
    def claims_seed(self) -> bool:
        """A model claims determinism by publishing ``seed`` among its supported parameters."""
        return "seed" in self.raw_params

    def unit_prices(self) -> dict[str, float]:
        """resolution -> USD per image, from ``/endpoints`` pricing rows (falls back to the legacy catalog)."""
        out: dict[str, float] = {}
        for row in self.pricing:
            if isinstance(row.get("cost_usd"), (int, float)):
                out[str(row.get("resolution") or "*")] = float(row["cost_usd"])
        if not out:
            for key, value in self.legacy_per_image.items():
                if isinstance(value, (int, float)):
                    out[str(key).replace("*", "x")] = float(value)
        return out

    def unit_price(self, resolution: str | None) -> float:
        """The price of one image at ``resolution``; the highest published price when it is not listed."""
        prices = self.unit_prices()
        if not prices:
            return 0.0
        if resolution is not None and str(resolution) in prices:
            return prices[str(resolution)]
        if resolution is not None and str(resolution).startswith("aspect:"):
            mapped = self.size_for_ratio(str(resolution)[7:])
            if mapped in prices:
                return prices[str(mapped)]
        if resolution is None or resolution == "auto":
            default = self.default_resolution
            if default in prices:
                return prices[str(default)]
            return next(iter(prices.values()))
        return max(prices.values())

    def size_for_ratio(self, ratio: str) -> str | None:
        """The first published WxH size with this aspect ratio (how a model maps ``aspect_ratio``)."""
        w, _, h = ratio.partition(":")
        try:
            wanted = float(w) / float(h)
        except (ValueError, ZeroDivisionError):
            return None
        for size in self.wxh_sizes:
            pixels = parse_wxh(size)
            if pixels and abs(pixels[0] / pixels[1] - wanted) < 0.03:
                return size
        return None

    @property
    def cheapest_price(self) -> float:
        prices = self.unit_prices()
        return min(prices.values()) if prices else 0.0


@dataclass
class TargetCatalog:
    """All models of the target, keyed by id."""

    models: dict[str, ModelInfo]
    raw: dict[str, Any] = field(default_factory=dict)  # the bodies as fetched (for snapshots)

    def get(self, model_id: Any) -> ModelInfo | None:
        return self.models.get(model_id) if isinstance(model_id, str) else None

    def cheapest(self, *, inputs: int = 0, inpainting: bool = False, seed: bool = False) -> ModelInfo | None:
        candidates = [
            m
            for m in self.models.values()
            if m.max_input_images >= inputs
            and (m.inpainting or not inpainting)
            and (m.claims_seed or not seed)
            and m.unit_prices()
        ]
        return min(candidates, key=lambda m: (m.cheapest_price, m.id)) if candidates else None

    def estimate(self, model_id: Any, resolution: Any, count: int) -> float:
        model = self.get(model_id)
        if model is None:
            return 0.0
        # a count above the published maximum is refused (free); price what could be accepted
        images = model.fixed_image_count or max(1, min(count, model.n_max))
        return model.unit_price(None if resolution is None else str(resolution)) * images


def fetch_catalog(target: Target) -> TargetCatalog:
    """Read the three public catalogs anonymously (free, no key sent)."""
    response = target.request("GET", "/api/v1/images/models")
    body = response.json() if response.status_code == 200 else {}
    endpoints: dict[str, Any] = {}
    for item in body.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            reply = target.request("GET", f"/api/v1/images/models/{quote(item['id'], safe='/')}/endpoints")
            endpoints[item["id"]] = reply.json() if reply.status_code == 200 else {}
    legacy = target.request("GET", "/api/v1/image-models", params={"detailed": "true"})
    return catalog_from_bodies(body, endpoints, legacy.json() if legacy.status_code == 200 else {})


def catalog_from_bodies(models_body: Any, endpoints: dict[str, Any], legacy_body: Any) -> TargetCatalog:
    """The catalog from the three bodies as published (fetched by a run, or seen passing a proxy)."""
    raw: dict[str, Any] = {"models": models_body, "endpoints": dict(endpoints), "legacy": legacy_body}
    models: dict[str, ModelInfo] = {}
    for item in (models_body.get("data") if isinstance(models_body, dict) else None) or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        params = item.get("supported_parameters")
        models[item["id"]] = ModelInfo(
            item["id"], dict(params) if isinstance(params, dict) else {}, dict(item.get("capabilities") or {})
        )
    for model_id, info in models.items():
        data = endpoints.get(model_id)
        for endpoint in (data.get("endpoints") if isinstance(data, dict) else None) or []:
            if isinstance(endpoint, dict):
                info.pricing.extend(r for r in endpoint.get("pricing") or [] if isinstance(r, dict))
    for item in (legacy_body.get("data") if isinstance(legacy_body, dict) else None) or []:
        if isinstance(item, dict) and item.get("id") in models:
            per_image = (item.get("pricing") or {}).get("per_image")
            if isinstance(per_image, dict):
                models[item["id"]].legacy_per_image = dict(per_image)
    return TargetCatalog(models, raw)
