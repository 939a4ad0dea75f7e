"""Where a run points: the bundled mock (served in-process on a loopback port) or a base URL.

The key is read from an environment variable only (never a flag value, which lands in shell
history), kept off ``repr`` and scrubbed from every text the toolkit writes (``Target.redact``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import requests

DEFAULT_KEY_ENV = "NANOGPT_API_KEY"
MOCK_KEY = "sk-nanogpt-contract-mock"
MAX_RETRY_AFTER_S = 60.0
REDACTED = "[REDACTED]"


class TargetError(Exception):
    """The target cannot be used as asked (no key, unreachable)."""


@dataclass
class Target:
    """One system under test and the clients that reach it."""

    base_url: str
    key: str = field(repr=False)
    kind: str  # "mock" (the embedded default) | "url"
    key_env: str = DEFAULT_KEY_ENV
    mock_controls: bool = False  # honours the mock's Prefer header / admin API (bundled or a nanogpt-mock)
    # which keys the target accepts: "enforced" (the live API, a keyed mock, anything that does not say
    # otherwise) or "any_key" (a nanogpt-mock whose admin API says so): no key can be invalid there
    auth_policy: str = "enforced"
    timeout_s: float = 120.0
    max_retries_429: int = 3
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    client: httpx.Client = field(init=False, repr=False)
    session: requests.Session = field(init=False, repr=False)
    retries_429: int = 0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, timeout=self.timeout_s, follow_redirects=False)
        self.session = requests.Session()

    @property
    def live(self) -> bool:
        """Real money is at stake: anything that is not a mock."""
        return not self.mock_controls

    def describe(self) -> dict[str, Any]:
        """What reports may say about the target (never the key)."""
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "mock": self.mock_controls,
            "auth_policy": self.auth_policy,
        }

    @property
    def accepts_any_key(self) -> bool:
        """Invalid-key probes cannot be provoked here (only a mock's own admin API can say so)."""
        return self.mock_controls and self.auth_policy == "any_key"

    def auth_headers(self, scheme: str = "bearer") -> dict[str, str]:
        if scheme == "x-api-key":
            return {"x-api-key": self.key}
        return {"Authorization": f"Bearer {self.key}"}

    def redact(self, text: str) -> str:
        """Remove the key (and anything that embeds it) from text meant for humans or files."""
        if self.key and len(self.key) >= 4:
            text = text.replace(self.key, REDACTED)
        return text

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        secret = {"authorization", "x-api-key", "cookie"}
        return {k: (REDACTED if k.lower() in secret else self.redact(v)) for k, v in headers.items()}

    def request(self, method: str, path: str, *, retry_429: bool = True, **kwargs: Any) -> httpx.Response:
        """Send one request, waiting out a 429 with ``Retry-After`` (bounded) when ``retry_429``."""
        attempt = 0
        while True:
            url = path if path.startswith(("http://", "https://")) else self.base_url + path
            response = self.client.request(method, url, **kwargs)
            if not (retry_429 and response.status_code == 429 and attempt < self.max_retries_429):
                return response
            wait = retry_after_seconds(response.headers.get("retry-after"), default=1.0)
            if wait is None or wait > MAX_RETRY_AFTER_S:
                return response
            attempt += 1
            self.retries_429 += 1
            self.sleep(wait)

    def close(self) -> None:
        self.client.close()
        self.session.close()


def retry_after_seconds(value: str | None, default: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; an HTTP date counts as unknown)."""
    if value is None:
        return default
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def key_from_env(key_env: str) -> str:
    key = os.environ.get(key_env, "").strip()
    if not key:
        raise TargetError(f"no API key: set the environment variable {key_env} (the key is never taken from a flag)")
    return key


def probe_mock_controls(client: httpx.Client, base_url: str) -> bool:
    """Whether the target is a nanogpt-mock (its admin clock answers); harmless on the live API.

    An unreachable target raises ``TargetError`` (one line for the CLI, not a traceback).
    """
    try:
        response = client.get(base_url.rstrip("/") + "/_mock/clock", timeout=5.0)
    except httpx.TransportError as exc:
        raise TargetError(f"cannot reach {base_url}: {type(exc).__name__}: {exc}") from None
    try:
        return response.status_code == 200 and "now" in response.json()
    except ValueError:
        return False


def probe_auth_policy(client: httpx.Client, base_url: str) -> str:
    """A nanogpt-mock's key policy from ``GET /_mock/config``; "enforced" whenever it does not say "any_key"."""
    try:
        response = client.get(base_url.rstrip("/") + "/_mock/config", timeout=5.0)
        policy = response.json().get("auth_policy") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        policy = None
    return "any_key" if policy == "any_key" else "enforced"


@contextmanager
def open_target(
    base_url: str | None = None,
    *,
    key_env: str = DEFAULT_KEY_ENV,
    app: Any = None,
    timeout_s: float = 120.0,
) -> Iterator[Target]:
    """Open the target for one run.

    Without ``base_url`` the bundled mock (or ``app``, e.g. a deliberately drifted one in tests) is
    served on a loopback port in this process; it accepts only the run's key so that auth checks mean
    something, and its key comes from ``key_env`` when set.
    """
    if base_url is not None:
        key = key_from_env(key_env)
        target = Target(base_url, key, "url", key_env, timeout_s=timeout_s)
        try:
            target.mock_controls = probe_mock_controls(target.client, base_url)
            if target.mock_controls:
                target.auth_policy = probe_auth_policy(target.client, base_url)
        except TargetError:
            target.close()
            raise
        try:
            yield target
        finally:
            target.close()
        return
    from mockserver.serving import serve

    key = os.environ.get(key_env, "").strip() or MOCK_KEY
    if app is None:
        app = embedded_mock_app(key)
    with serve(app) as server:
        target = Target(server.base_url, key, "mock", key_env, mock_controls=True, timeout_s=timeout_s)
        try:
            yield target
        finally:
            target.close()


def embedded_mock_app(key: str = MOCK_KEY, **config: Any) -> Any:
    """The bundled mock as the contracts run it: one accepted key, plenty of (fake) balance."""
    from mockserver import Engine, MockConfig, create_app

    settings: dict[str, Any] = {"api_keys": frozenset({key}), "balance": Decimal("1000000"), **config}
    return create_app(engine=Engine(MockConfig(**settings)))
