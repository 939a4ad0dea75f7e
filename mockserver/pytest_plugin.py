"""pytest plugin (entry point ``pytest11``): fixtures that give a test a NanoGPT image mock.

Import-light on purpose: pytest loads this module in every session of every project that has the
package installed, so nothing heavy (Starlette, Pillow, uvicorn) is imported until a fixture is used.

- ``nanogpt_mock``: a real server on a free loopback port, started once per session and reset
  before each test (balances, journal, clock, faults).
- ``nanogpt_mock_asgi``: an in-process instance behind httpx's ASGI transport, new for each test.

Both hand out ``openai_base_url`` (``<mock>/api/v1``), which serves every call of the ``openai``
SDK (``images.generate`` and ``images.edit``); ``openai_edits_base_url`` is a deprecated alias.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .config import MockConfig
    from .testing import AsgiMockHandle, MockHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nanogpt-mock")
    group.addoption(
        "--nanogpt-mock-api-key",
        default=None,
        help="API key the nanogpt_mock fixtures hand to tests (any non-empty key is accepted).",
    )
    group.addoption("--nanogpt-mock-catalog", default=None, help="Model catalog YAML for the nanogpt_mock fixtures.")


def _config(request: pytest.FixtureRequest) -> tuple[MockConfig, str]:
    from pathlib import Path

    from .config import MockConfig
    from .testing import DEFAULT_TEST_KEY

    catalog = request.config.getoption("--nanogpt-mock-catalog")
    key = request.config.getoption("--nanogpt-mock-api-key") or DEFAULT_TEST_KEY
    return MockConfig(catalog_path=Path(catalog) if catalog else None), key


@pytest.fixture(scope="session")
def _nanogpt_mock_session(request: pytest.FixtureRequest) -> Iterator[MockHandle]:
    from .testing import MockHandle

    config, key = _config(request)
    with MockHandle.serve(config, api_key=key) as handle:
        yield handle


@pytest.fixture
def nanogpt_mock(_nanogpt_mock_session: MockHandle) -> MockHandle:
    """The session's mock server, reset for this test."""
    _nanogpt_mock_session.reset()
    return _nanogpt_mock_session


@pytest.fixture
def nanogpt_mock_asgi(request: pytest.FixtureRequest) -> AsgiMockHandle:
    """A fresh in-process mock: ``handle.client()`` is an httpx.AsyncClient on its ASGI transport."""
    from .engine import Engine
    from .testing import AsgiMockHandle

    config, key = _config(request)
    return AsgiMockHandle(Engine(config), api_key=key)
