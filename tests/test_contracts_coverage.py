"""The coverage planner: every documented value once per run, on the cheapest model; the dry run prices it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contracts.coverage import Planner
from contracts.report import summary_line, to_markdown
from contracts.runner import Runner, RunOptions
from contracts.target import MOCK_KEY, embedded_mock_app, open_target
from mockserver.spec import load_spec

pytestmark = pytest.mark.socket


def _spent(app: object) -> float:
    return float(Decimal("1000000") - app.state.engine.ledger.balance(MOCK_KEY))  # type: ignore[attr-defined]


def test_every_facet_is_covered_on_the_cheapest_model_that_supports_it() -> None:
    app = embedded_mock_app()
    with open_target(app=app) as target:
        runner = Runner(target, RunOptions(phases=("coverage",)))
        result = runner.run()
        assert runner.catalog is not None
        facets = Planner(load_spec(), runner.catalog).facets()
    assert result.ok, [f.key for f in result.findings]
    assert result.coverage is not None and result.coverage["covered"] == result.coverage["total"] == len(facets)
    assert f"covered {len(facets)} of {len(facets)} facets" in summary_line(result)
    names = {f.name for f in facets}
    for wanted in ("output_format=jpeg", "output_format=webp", "response_format=url", "mask=maskDataUrl", "seed=seed"):
        assert wanted in names
    by_name = {f.name: f for f in facets}
    jpeg = by_name["output_format=jpeg"].request
    assert jpeg is not None
    supporting = [m for m in runner.catalog.models.values() if "jpeg" in m.enum("output_format") and m.unit_prices()]
    assert jpeg.fields["model"] == min(supporting, key=lambda m: (m.cheapest_price, m.id)).id
    # the journal shows each JPEG/WebP request was answered in that format (the check decoded them)
    asked = {e["operation_id"] for e in app.state.engine.journal.entries() if e["status"] == 200}
    assert {"imagesGenerate", "openaiEditImage", "legacyGenerateImage"} <= asked


def test_a_small_budget_leaves_facets_uncovered_with_the_reason() -> None:
    with open_target() as target:
        result = Runner(target, RunOptions(phases=("coverage",), budget_usd=0.05)).run()
    assert result.coverage is not None
    assert 0 < result.coverage["covered"] < result.coverage["total"]
    assert all("over budget" in u["reason"] for u in result.coverage["uncovered"])
    markdown = to_markdown(result)
    assert "| uncovered facet | reason |" in markdown and "over budget" in markdown


@pytest.mark.parametrize("options", [{}, {"budget_usd": 0.25, "cheap": True}], ids=["mock defaults", "live-like"])
def test_the_dry_run_estimate_is_within_25_percent_of_what_the_run_spends(options: dict[str, object]) -> None:
    app = embedded_mock_app()
    with open_target(app=app) as target:
        dry = Runner(target, RunOptions(dry_run=True, **options)).run()  # type: ignore[arg-type]
    assert _spent(app) == 0
    estimate = sum(p.estimate_usd for p in dry.plan)
    app = embedded_mock_app()
    with open_target(app=app) as target:
        Runner(target, RunOptions(**options)).run()  # type: ignore[arg-type]
    spent = _spent(app)  # the mock's own ledger, not the runner's accounting
    assert spent > 0
    assert abs(estimate - spent) <= 0.25 * spent, (estimate, spent)
