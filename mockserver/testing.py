"""A handle on one running mock for tests: its address, key, journal, balances, clock and faults.

Used by the pytest plugin's fixtures; usable directly too::

    with MockHandle.serve() as mock:
        client = openai.OpenAI(api_key=mock.api_key, base_url=mock.openai_base_url)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx

from .app import create_app
from .config import MockConfig
from .controls import FaultProfile, QueuedFault
from .engine import Engine
from .serving import ServerThread

DEFAULT_TEST_KEY = "sk-nanogpt-mock-test"


class MockHandle:
    """Controls of one mock instance, in the test's own process (no admin HTTP round trips)."""

    def __init__(self, engine: Engine, base_url: str, api_key: str = DEFAULT_TEST_KEY) -> None:
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    @classmethod
    @contextmanager
    def serve(cls, config: MockConfig | None = None, api_key: str = DEFAULT_TEST_KEY) -> Iterator[MockHandle]:
        """Start a real uvicorn server on a free loopback port for the duration of the block."""
        engine = Engine(config)
        server = ServerThread(create_app(engine=engine)).start()
        try:
            yield cls(engine, server.base_url, api_key)
        finally:
            server.stop()

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``, serving every SDK call: ``images.generate`` lands on
        ``/api/v1/images/generations``, ``images.edit`` on ``/api/v1/images/edits``."""
        return self.base_url + "/api/v1"

    @property
    def inspector_url(self) -> str:
        """The request inspector: open it in a browser while a test is paused (``breakpoint()``)."""
        return self.base_url + "/_mock/"

    @property
    def openai_edits_base_url(self) -> str:
        """Deprecated alias of ``openai_base_url`` (kept for tests written against 0.1.0)."""
        return self.openai_base_url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def reset(self) -> None:
        self.engine.reset()

    # journal
    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Recorded requests (filters: path, operation_id, key, status, limit); keys appear as key_id only."""
        return self.engine.journal.entries(**filters)

    # money
    def balance(self, key: str | None = None) -> Decimal:
        return self.engine.ledger.balance(key or self.api_key)

    def set_balance(self, amount: Decimal | float | str, key: str | None = None) -> None:
        self.engine.ledger.set_balance(key or self.api_key, amount)

    # time
    def now(self) -> float:
        return self.engine.clock.now()

    def advance_clock(self, seconds: float) -> float:
        return self.engine.clock.advance(seconds)

    def set_clock(self, timestamp: float, *, frozen: bool = True) -> float:
        return self.engine.clock.set(timestamp, frozen=frozen)

    # faults
    def set_faults(self, profile: FaultProfile | dict[str, Any]) -> None:
        self.engine.faults.set_profile(
            profile if isinstance(profile, FaultProfile) else FaultProfile.from_dict(profile)
        )

    def fail_next(
        self,
        code: str | None = None,
        *,
        status: int | None = None,
        count: int = 1,
        operation_id: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Queue a one-shot fault: the next ``count`` matching requests get this documented error."""
        raw: dict[str, Any] = {"count": count}
        for name, value in (
            ("code", code),
            ("status", status),
            ("operation_id", operation_id),
            ("latency_ms", latency_ms),
        ):
            if value is not None:
                raw[name] = value
        self.engine.faults.enqueue(QueuedFault.from_dict(raw))


class AsgiMockHandle(MockHandle):
    """The same controls for an in-process mock reached through httpx's ASGI transport (no socket)."""

    def __init__(self, engine: Engine, api_key: str = DEFAULT_TEST_KEY) -> None:
        super().__init__(engine, "http://nanogpt-mock.test", api_key)
        self.app = create_app(engine=engine)
        self.transport = httpx.ASGITransport(app=self.app)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` wired to the app; pass it to ``openai.AsyncOpenAI(http_client=...)``."""
        return httpx.AsyncClient(transport=self.transport, base_url=self.base_url, **kwargs)
