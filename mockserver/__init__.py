"""A spec-driven mock of the NanoGPT image API.

``create_app()`` returns an ASGI app (one instance, its own state); ``nanogpt-mock`` serves it.
Names are imported on first use, so ``import mockserver`` (and the pytest plugin that pytest loads
in every session) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import MockConfig
    from .engine import Engine
    from .errors import MockError, MockServerError, SpecError
    from .messages import MockRequest, MockResponse

__all__ = [
    "Engine",
    "MockConfig",
    "MockError",
    "MockRequest",
    "MockResponse",
    "MockServerError",
    "SpecError",
    "create_app",
]
__version__ = "0.1.0"

_HOMES = {
    "create_app": ".app",
    "Engine": ".engine",
    "MockConfig": ".config",
    "MockError": ".errors",
    "MockServerError": ".errors",
    "SpecError": ".errors",
    "MockRequest": ".messages",
    "MockResponse": ".messages",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
