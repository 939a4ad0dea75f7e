"""Errors of the mock, and how a documented error code becomes a response body.

Hierarchy::

    MockServerError           anything the toolkit raises on purpose
      SpecError               the spec or the catalog is not what the code expects (start-up only)
      MockError               a request is refused with a documented code (becomes an HTTP answer)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .spec import ErrorTemplate, MockServerError, SpecError

__all__ = ["ErrorTemplate", "MockError", "MockServerError", "SpecError", "render_error"]


@dataclass
class MockError(MockServerError):
    """A request refused with a documented error code.

    The engine turns it into the status and envelope that the spec declares for the code on the
    operation at hand, so handlers never build error bodies themselves.
    """

    code: str
    message: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message or ''}"


def render_error(template: ErrorTemplate, error: MockError) -> dict[str, Any]:
    """Fill the spec's example body for ``template`` with the specifics of ``error``.

    The example fixes the envelope (OpenAI-style, Image API, legacy); only the message, the
    offending parameter and documented extras (``requiredBalance``) change per request.
    """
    body: dict[str, Any] = copy.deepcopy(dict(template.body))
    inner = body.get("error")
    if isinstance(inner, dict):
        if error.message:
            inner["message"] = error.message
        if template.param_key:
            if error.param:
                inner[template.param_key] = error.param
            else:
                inner.pop(template.param_key, None)
    elif isinstance(inner, str) and error.message:
        body["error"] = error.message
    for key, value in error.extra.items():
        if key in body:
            body[key] = value
    return body
