"""A spec-driven mock of the NanoGPT image API.

``create_app()`` returns an ASGI app (one instance, its own state); ``nanogpt-mock`` serves it.
"""

from __future__ import annotations

from .app import create_app
from .engine import Engine, MockConfig, MockRequest, MockResponse
from .errors import MockError, MockServerError, SpecError

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
