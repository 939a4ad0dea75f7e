"""Deliberately drifted mocks: every drift is detected and named; the faithful mock raises nothing."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.model import Finding, RunResult
from contracts.report import to_markdown
from tests.contracts_support.drift_apps import VARIANTS, Variant, faithful
from tests.contracts_support.runs import run_app

pytestmark = pytest.mark.socket


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    _result, fresh = run_app(faithful())
    return fresh


_RUNS: dict[str, RunResult] = {}


def _run(variant: Variant, snapshot: dict[str, Any]) -> RunResult:
    family = variant.name.split(" (")[0]
    if family not in _RUNS:
        _RUNS[family], _ = run_app(variant.build(), snapshot)
    return _RUNS[family]


def _matches(finding: Finding, variant: Variant) -> bool:
    return (
        finding.check == variant.check
        and (variant.operation_id is None or finding.operation_id == variant.operation_id)
        and (variant.path is None or finding.path == variant.path)
        and (variant.code is None or finding.code == variant.code)
        and (variant.model is None or finding.model == variant.model)
    )


def test_faithful_mock_has_no_findings_and_no_drift(snapshot: dict[str, Any]) -> None:
    result, _ = run_app(faithful(), snapshot)
    assert [f.key for f in result.findings] == []
    assert [f.key for f in result.drift] == []
    assert result.ok and result.stopped is None


def test_there_are_at_least_ten_distinct_drifts() -> None:
    assert len({v.name.split(" (")[0] for v in VARIANTS}) >= 10


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_drift_is_detected_and_named(variant: Variant, snapshot: dict[str, Any]) -> None:
    result = _run(variant, snapshot)
    pool = result.drift if variant.drift else result.findings
    found = [f for f in pool if _matches(f, variant)]
    assert found, f"{variant.name}: no {variant.check} finding; got " + "; ".join(sorted({f.key for f in pool}))
    assert not result.ok
    markdown = to_markdown(result)
    assert f"`{variant.check}`" in markdown
    if variant.path:
        assert variant.path in markdown
