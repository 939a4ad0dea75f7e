"""The settings of one mock instance (``cli.py`` maps its flags and environment variables onto them)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .controls import FaultProfile
from .state import DEFAULT_BALANCE

DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
DEFAULT_MAX_REQUEST_PIXELS = 2 * 4096 * 4096
DEFAULT_WORKER_THREADS = 4
DEFAULT_BODY_TIMEOUT = 30.0


@dataclass(frozen=True)
class MockConfig:
    """Settings of one mock instance. ``None`` means "the catalog's route fact" where one exists."""

    api_keys: frozenset[str] = frozenset()  # empty: any non-empty key is accepted
    balance: Decimal = DEFAULT_BALANCE
    catalog_path: Path | None = None
    spec_path: Path | None = None
    url_ttl: int = 3600
    signing_secret: str = "nanogpt-mock-signing-secret"
    presign_failure: bool = False
    max_body_bytes: int = 48 * 1024 * 1024
    max_image_bytes: int | None = None  # per data URL / upload; None: catalog routes.data_url_max_bytes
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS  # per input image, read from its header before decoding
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS  # all input images (and masks) of one request
    worker_threads: int = DEFAULT_WORKER_THREADS  # decoding/rendering/encoding off the event loop, at most this many
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds a client may take to send its whole body (408 after)
    # the HTTP server's limits (serving.py hands them to uvicorn)
    header_timeout: float = 10.0  # seconds to send the request line and headers; the connection is dropped after
    keep_alive_timeout: int = 5  # seconds an idle keep-alive connection is kept
    max_header_bytes: int = 64 * 1024  # request line plus headers; 431 and close beyond
    max_connections: int = 512  # connections (and requests in flight) at once; 503 beyond
    public_base_url: str | None = None
    render_cache_bytes: int = 256 * 1024 * 1024
    fault_profile: FaultProfile | None = None
    admin_token: str | None = None
    cors: bool = True  # answer CORS preflights and send `Access-Control-Allow-Origin: *` (like the live API)
    check_responses: bool = False  # hold every answer to the spec and raise NonConformingResponse (tests)
