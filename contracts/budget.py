"""Spend control: every request is priced from the target's catalog *before* it is sent.

The run stops cleanly (``BudgetExhausted``) when the next request would pass ``--budget-usd`` or
``--max-requests``; rejected requests are free, so only requests that may generate are priced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .catalog import TargetCatalog

# operationId -> (the model a request without `model` gets, the field(s) that size it, the count fields)
GENERATING: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "imagesGenerate": (None, ("resolution", "size"), ("nImages", "n")),
    "openaiGenerateImage": ("hidream", ("size", "resolution"), ("n",)),  # `resolution`: a synonym of size
    "openaiGenerateImageApi": ("hidream", ("size", "resolution"), ("n",)),
    "openaiEditImage": ("gpt-image-2", ("size",), ("n",)),
    "openaiEditImageAlias": ("gpt-image-2", ("size",), ("n",)),
    "legacyGenerateImage": (None, ("resolution",), ("nImages",)),
}
DEFAULT_BUDGET_USD = 0.25
DEFAULT_MAX_REQUESTS = 500


class BudgetExhausted(Exception):
    """The next request would pass the spend budget or the request cap."""


def request_count(operation_id: str, body: Any) -> int:
    """How many images a request asks for (``nImages`` beats ``n``); 1 when unreadable."""
    spec = GENERATING.get(operation_id)
    if spec is None or not isinstance(body, dict):
        return 1
    for name in spec[2]:
        if name in body:
            try:
                return max(1, int(body[name]))
            except (TypeError, ValueError):
                return 1
    return 1


def request_model(operation_id: str, body: Any) -> Any:
    spec = GENERATING.get(operation_id)
    default = spec[0] if spec else None
    if isinstance(body, dict) and body.get("model"):
        return body.get("model")
    return default


def request_resolution(operation_id: str, body: Any) -> Any:
    spec = GENERATING.get(operation_id)
    if spec is None or not isinstance(body, dict):
        return None
    for name in spec[1]:
        if body.get(name) is not None:
            return body[name]
    if "width" in body or "height" in body:
        return f"{body.get('width', 1024)}x{body.get('height', 1024)}"
    if body.get("aspect_ratio") is not None:
        return f"aspect:{body['aspect_ratio']}"  # the pixel size is the model's mapping: priced at its highest
    return None


def estimate_usd(catalog: TargetCatalog | None, operation_id: str, body: Any) -> float:
    """Upper-bound price of one request, from the catalog; 0 for operations that never charge."""
    if catalog is None or operation_id not in GENERATING:
        return 0.0
    return catalog.estimate(
        request_model(operation_id, body), request_resolution(operation_id, body), request_count(operation_id, body)
    )


IMAGE_INPUT_FIELDS = ("input_references", "imageDataUrl", "imageDataUrls", "image", "image[]")


def refused_by_catalog(catalog: TargetCatalog, operation_id: str, body: Any) -> bool:
    """Whether the target's catalog says this request will be refused (and so cost nothing).

    Used for the dry run's expected spend; reservations before sending stay at the upper bound.
    """
    if operation_id not in GENERATING or not isinstance(body, dict):
        return False
    model = catalog.get(request_model(operation_id, body))
    if model is None or not model.unit_prices():
        return True
    count = request_count(operation_id, body)
    if not model.fixed_image_count and count > model.n_max:
        return True
    for name in ("n", "nImages"):
        if name in body and not (isinstance(body[name], int) and not isinstance(body[name], bool) and body[name] >= 1):
            return True
    resolution = body.get("resolution") if operation_id == "imagesGenerate" else body.get("size")
    listed = isinstance(resolution, str) and resolution in model.resolutions
    if isinstance(resolution, str) and resolution != "auto" and model.resolutions and not listed:
        return True
    published = {
        "output_format": model.enum("output_format"),
        "quality": model.qualities,
        "aspect_ratio": model.aspect_ratios,
    }
    for name, values in published.items():
        if name in body and (not values or str(body[name]) not in values):
            return name != "output_format" or body[name] not in ("png", None) or bool(values)
    if model.max_input_images == 0 and any(body.get(k) for k in IMAGE_INPUT_FIELDS):
        return True
    if operation_id.startswith("openaiEdit") and not any(_image_like(body.get(k)) for k in IMAGE_INPUT_FIELDS):
        return True  # an edit needs one decodable input image
    return not isinstance(body.get("prompt"), str) or not body["prompt"]


def _image_like(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    magic = (b"\x89PNG", b"\xff\xd8", b"RIFF", b"GIF8")
    for item in items:
        if isinstance(item, bytes) and item.startswith(magic):
            return True
        if isinstance(item, str) and (item.startswith(("http://", "https://")) or item.startswith("data:image/")):
            head = item.split(",", 1)[-1][:16]
            return item.startswith("http") or any(head.startswith(m) for m in ("iVBOR", "/9j/", "UklG", "R0lG"))
    return False


def expected_usd(catalog: TargetCatalog | None, operation_id: str, body: Any) -> float:
    """What a request is expected to cost: its price, or 0 when the catalog says it will be refused."""
    if catalog is None or refused_by_catalog(catalog, operation_id, body):
        return 0.0
    return estimate_usd(catalog, operation_id, body)


@dataclass
class Budget:
    """Reserve-before-send accounting; thread-safe because schemathesis checks may send too."""

    limit_usd: float | None = DEFAULT_BUDGET_USD
    max_requests: int | None = DEFAULT_MAX_REQUESTS
    spent_usd: float = 0.0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else self.limit_usd - self.spent_usd

    def reserve(self, estimate: float, what: str) -> None:
        """Count one request of ``estimate`` USD, or raise before it is sent."""
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                raise BudgetExhausted(f"request cap reached ({self.max_requests} requests) before {what}")
            if self.limit_usd is not None and self.spent_usd + estimate > self.limit_usd + 1e-12:
                raise BudgetExhausted(
                    f"budget: {what} is priced at ${estimate:.4f}; ${self.spent_usd:.4f} of "
                    f"${self.limit_usd:.4f} is spent, so it was not sent"
                )
            self.requests += 1
            self.spent_usd = round(self.spent_usd + estimate, 9)  # sums of prices, not float noise

    def settle(self, estimate: float, actual: float | None) -> None:
        """Replace the estimate by the price the target reports (``cost``), or 0 for a rejection."""
        with self._lock:
            self.spent_usd = round(self.spent_usd + (actual if actual is not None else 0.0) - estimate, 9)
