"""The values that cross between the outer layer and the pipeline: the request, the handler's
outcome and the rendered response."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .billing import Charge
from .errors import MockError


@dataclass(frozen=True, slots=True)
class MockRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    base_url: str = "http://127.0.0.1:8787"


@dataclass(slots=True)
class MockResponse:
    status: int
    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    operation_id: str | None = None
    error_code: str | None = None
    delay_ms: float = 0.0  # the outer layer waits this long before answering (latency faults)
    charge: Charge | None = None  # settled by the outer layer once the 2xx is sent, refunded otherwise


@dataclass(frozen=True)
class Outcome:
    """What a handler decided: the answer, and what the journal and the latency need to know of it."""

    status: int
    payload: Any = None  # JSON-encodable (orjson); ignored when ``raw`` is given
    raw: bytes | None = None  # an already-encoded body (catalogs, image files)
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    error: MockError | None = None
    charge: Charge | None = None
    model: str | None = None
    megapixels: float = 0.0  # of all images generated: drives the fault profile's latency
    images: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()  # URLs of the images answered (journal)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None, **extra: Any) -> MockResponse:
    return MockResponse(status, orjson.dumps(payload), headers=headers or {}, **extra)


def plain_error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}
