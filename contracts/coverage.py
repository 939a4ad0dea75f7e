"""The coverage planner: every documented parameter value exercised once per run, each as cheaply as possible.

A facet is one (dimension, value): a generating route, an ``output_format`` / ``response_format`` the
spec enumerates, a resolution tier, an aspect ratio, a WxH size, ``auto``, a quality, a count above one
(``n``, ``nImages``), one and several image inputs, a mask, a seed. Values come from the spec and from
the target's own catalog; each facet is planned on the cheapest model of that catalog that supports it,
with everything else at its cheapest. Facets no model supports, or that do not fit the budget, are
reported uncovered with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockserver.spec import Spec

from .budget import estimate_usd
from .catalog import ModelInfo, TargetCatalog, parse_wxh
from .strategies import DomainRequest, data_url, encode_image, mask_for

ROUTES = {
    "imagesGenerate": "/api/v1/images",
    "openaiGenerateImage": "/v1/images/generations",
    "openaiGenerateImageApi": "/api/v1/images/generations",
    "openaiEditImage": "/api/v1/images/edits",
    "openaiEditImageAlias": "/api/v1/images/edit",
    "legacyGenerateImage": "/api/generate-image",
}
EDITS = ("openaiEditImage", "openaiEditImageAlias")


@dataclass
class Facet:
    """One documented value to exercise, and how (or why not)."""

    dimension: str
    value: str
    request: DomainRequest | None = None
    estimate_usd: float = 0.0
    reason: str | None = None  # why it is not covered (set when request is None or it was not sent)

    @property
    def name(self) -> str:
        return f"{self.dimension}={self.value}"


def spec_enum(spec: Spec, operation_id: str, field: str) -> list[str]:
    """The values the spec enumerates for one request field (first JSON body that declares it)."""
    op = spec.by_id.get(operation_id)
    for media in op.bodies.values() if op else ():
        values = _find_enum(spec, media.schema, field, 0)
        if values:
            return values
    return []


def _find_enum(spec: Spec, schema: Any, field: str, depth: int) -> list[str]:
    schema = spec.resolve(schema)
    if not isinstance(schema, dict) or depth > 6:
        return []
    prop = spec.resolve((schema.get("properties") or {}).get(field))
    if isinstance(prop, dict) and isinstance(prop.get("enum"), list):
        return [str(v) for v in prop["enum"]]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            found = _find_enum(spec, sub, field, depth + 1)
            if found:
                return found
    return []


def _small_png() -> bytes:
    return encode_image(16, 16, (30, 90, 160), "png")


def _cheapest_size(model: ModelInfo) -> str | None:
    sizes = [s for s in model.wxh_sizes if s in model.unit_prices()] or model.wxh_sizes
    if not sizes:
        return None
    return min(sizes, key=lambda s: (model.unit_price(s), (parse_wxh(s) or (0, 0))[0] * (parse_wxh(s) or (0, 0))[1]))


class Planner:
    """Builds one cheapest request per facet from the spec and the target's catalog."""

    def __init__(self, spec: Spec, catalog: TargetCatalog) -> None:
        self.spec, self.catalog = spec, catalog
        self.models = [m for m in catalog.models.values() if m.unit_prices() and not m.fixed_image_count]

    def _cheapest(self, ok: Callable[[ModelInfo], bool], price: Callable[[ModelInfo], float]) -> ModelInfo | None:
        found = [m for m in self.models if ok(m)]
        return min(found, key=lambda m: (price(m), m.id)) if found else None

    def _request(self, op_id: str, model: ModelInfo, extra: dict[str, Any], *, sized: bool = True) -> DomainRequest:
        body: dict[str, Any] = {"model": model.id, "prompt": "coverage probe"}
        size_field = "resolution" if op_id in ("imagesGenerate", "legacyGenerateImage") else "size"
        size = _cheapest_size(model)
        if sized and size and not any(k in extra for k in ("resolution", "size", "aspect_ratio")):
            body[size_field] = size
        if op_id in EDITS and not any(k in extra for k in ("imageDataUrl", "imageDataUrls")):
            body["imageDataUrl"] = data_url(_small_png())
        body.update(extra)
        auth = "x-api-key" if op_id == "legacyGenerateImage" else "bearer"
        return DomainRequest(op_id, "POST", ROUTES[op_id], body, auth=auth, label=f"coverage:{model.id}")

    def _facet(
        self,
        dimension: str,
        value: str,
        op_id: str,
        ok: Callable[[ModelInfo], bool],
        extra: Callable[[ModelInfo], dict[str, Any]],
        price: Callable[[ModelInfo], float] | None = None,
        sized: bool = True,
    ) -> Facet:
        model = self._cheapest(ok, price or (lambda m: m.cheapest_price))
        if model is None:
            return Facet(dimension, value, reason="no model in the target's catalog supports it")
        request = self._request(op_id, model, extra(model), sized=sized)
        return Facet(dimension, value, request, estimate_usd(self.catalog, op_id, request.fields))

    def facets(self) -> list[Facet]:
        out: list[Facet] = []
        gen = "imagesGenerate"
        for op_id in ROUTES:
            out.append(self._facet("route", op_id, op_id, _inputs(1 if op_id in EDITS else 0), _fields()))
        for fmt in spec_enum(self.spec, gen, "output_format"):
            out.append(
                self._facet("output_format", fmt, gen, _offers("output_format", fmt), _fields(output_format=fmt))
            )
        for fmt in spec_enum(self.spec, gen, "response_format"):
            out.append(self._facet("response_format", fmt, gen, _inputs(0), _fields(response_format=fmt)))
        tiers = sorted({r for m in self.models for r in m.resolutions if not parse_wxh(r) and r != "auto"})
        for tier in [*tiers, "auto"]:
            out.append(
                self._facet("resolution", tier, gen, _resolution(tier), _fields(resolution=tier), _price_at(tier))
            )
        out.append(self._facet("resolution", "WxH", gen, _sized, _fields()))
        out.append(self._facet("size", "WxH", "openaiGenerateImage", _sized, _fields()))
        for ratio in sorted({a for m in self.models for a in m.aspect_ratios}):
            extra = _fields(aspect_ratio=ratio)
            out.append(self._facet("aspect_ratio", ratio, gen, _offers("aspect_ratio", ratio), extra, _price_at(None)))
        for quality in sorted({q for m in self.models for q in m.qualities}):
            out.append(self._facet("quality", quality, gen, _offers("quality", quality), _fields(quality=quality)))
        out.append(self._facet("count", "n=2", "openaiGenerateImage", _plural, _fields(n=2)))
        out.append(self._facet("count", "nImages=2", gen, _plural, _fields(nImages=2)))
        one = _fields(input_references=[data_url(_small_png())])
        out.append(self._facet("image_inputs", "one", gen, _inputs(1), one))
        several = _fields(imageDataUrls=[data_url(_small_png()), data_url(encode_image(20, 20, (9, 9, 9), "png"))])
        out.append(self._facet("image_inputs", "several", "openaiEditImage", _inputs(2), several))
        source = _small_png()
        masked = _fields(imageDataUrl=data_url(source), maskDataUrl=data_url(mask_for(source)))
        out.append(self._facet("mask", "maskDataUrl", "openaiEditImage", _inpainting, masked))
        out.append(self._facet("seed", "seed", gen, _seeded, _fields(seed=4242)))
        return out


def _fields(**values: Any) -> Callable[[ModelInfo], dict[str, Any]]:
    return lambda model: dict(values)


def _offers(name: str, value: str) -> Callable[[ModelInfo], bool]:
    return lambda model: value in model.enum(name)


def _resolution(value: str) -> Callable[[ModelInfo], bool]:
    return lambda model: value in model.resolutions


def _inputs(count: int) -> Callable[[ModelInfo], bool]:
    return lambda model: model.max_input_images >= count


def _price_at(resolution: str | None) -> Callable[[ModelInfo], float]:
    return lambda model: model.unit_price(resolution)


def _sized(model: ModelInfo) -> bool:
    return bool(model.wxh_sizes)


def _plural(model: ModelInfo) -> bool:
    return model.n_max >= 2


def _inpainting(model: ModelInfo) -> bool:
    return model.inpainting and model.max_input_images >= 1


def _seeded(model: ModelInfo) -> bool:
    return model.claims_seed


def coverage_summary(facets: list[Facet], covered: set[str]) -> dict[str, Any]:
    """What the report shows: covered X of Y facets, and the uncovered ones with their reason."""
    return {
        "covered": len(covered),
        "total": len(facets),
        "uncovered": [{"facet": f.name, "reason": f.reason or "not sent"} for f in facets if f.name not in covered],
    }
