"""The request and response values that cross between the outer layer and the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


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
    delay: float = 0.0  # seconds the outer layer waits before answering (latency faults)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None, **extra: Any) -> MockResponse:
    return MockResponse(status, orjson.dumps(payload), headers=headers or {}, **extra)


def plain_error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}
