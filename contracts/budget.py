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
    "openaiGenerateImage": ("hidream", ("size",), ("n",)),
    "openaiGenerateImageApi": ("hidream", ("size",), ("n",)),
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
    return None


def estimate_usd(catalog: TargetCatalog | None, operation_id: str, body: Any) -> float:
    """Upper-bound price of one request, from the catalog; 0 for operations that never charge."""
    if catalog is None or operation_id not in GENERATING:
        return 0.0
    return catalog.estimate(
        request_model(operation_id, body), request_resolution(operation_id, body), request_count(operation_id, body)
    )


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
            self.spent_usd += estimate

    def settle(self, estimate: float, actual: float | None) -> None:
        """Replace the estimate by the price the target reports (``cost``), or 0 for a rejection."""
        with self._lock:
            self.spent_usd += (actual if actual is not None else 0.0) - estimate
