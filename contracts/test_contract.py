"""The contract suite as pytest tests: one test per phase and operation of the spec."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.report import describe
from mockserver.spec import load_spec

OPERATIONS = sorted(op.operation_id for op in load_spec().operations)


def _verdict(result: Any, phase: str, operation_id: str | None) -> None:
    cases = [c for c in result.cases if c.phase == phase and (operation_id is None or c.operation_id == operation_id)]
    failures = [f"{c.name}: {describe(f)}" for c in cases if c.status in ("failed", "error") for f in c.findings]
    assert not failures, "\n".join(failures)
    if not cases and result.stopped:
        pytest.skip(f"not reached: {result.stopped}")
    if cases and all(c.status == "skipped" for c in cases):
        pytest.skip("; ".join(sorted({c.note or "skipped" for c in cases})))


def test_catalogs(contract_result: Any) -> None:
    _verdict(contract_result, "catalog", None)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_schema(contract_result: Any, operation_id: str) -> None:
    """schemathesis over the spec, with every default check and the domain checks."""
    _verdict(contract_result, "schema", operation_id)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_domain(contract_result: Any, operation_id: str) -> None:
    """Realistic, catalog-driven requests and the cross-request properties."""
    _verdict(contract_result, "domain", operation_id)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_negative(contract_result: Any, operation_id: str) -> None:
    """Every documented error code, provoked on purpose."""
    _verdict(contract_result, "negative", operation_id)
