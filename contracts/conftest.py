"""pytest options for ``pytest --pyargs contracts`` (the contract suite inside a team's own CI).

    pytest --pyargs contracts                                   # the bundled mock
    NANOGPT_API_KEY=... pytest --pyargs contracts --contract-base-url https://nano-gpt.com \\
        --contract-budget-usd 0.10 --junitxml contract.xml
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contracts.budget import DEFAULT_BUDGET_USD, DEFAULT_MAX_REQUESTS
from contracts.target import DEFAULT_KEY_ENV


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nanogpt-contract")
    group.addoption("--contract-base-url", default=None, help="target base URL (default: the bundled mock)")
    group.addoption("--contract-key-env", default=DEFAULT_KEY_ENV, help="env var holding the API key")
    group.addoption(
        "--contract-budget-usd",
        type=float,
        default=None,
        help=f"spend limit (default {DEFAULT_BUDGET_USD} live, none on the mock)",
    )
    group.addoption("--contract-max-requests", type=int, default=None, help="request cap")
    group.addoption("--contract-examples", type=int, default=12, help="schemathesis examples per operation/mode")
    group.addoption("--contract-all-models", action="store_true", help="positive cases over every model and size")


@pytest.fixture(scope="session")
def contract_result(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One contract run per session; the tests read their part of it."""
    from contracts.runner import Runner, RunOptions
    from contracts.target import TargetError, open_target

    option = request.config.getoption
    try:
        with open_target(option("--contract-base-url"), key_env=option("--contract-key-env")) as target:
            live = target.live
            options = RunOptions(
                schema_examples=option("--contract-examples"),
                budget_usd=option("--contract-budget-usd") or (DEFAULT_BUDGET_USD if live else None),
                max_requests=option("--contract-max-requests") or (DEFAULT_MAX_REQUESTS if live else None),
                cheap=False if option("--contract-all-models") else None,
            )
            yield Runner(target, options).run()
    except TargetError as exc:
        pytest.fail(str(exc), pytrace=False)
