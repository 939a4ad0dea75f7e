"""The contract suite itself: the faithful mock conforms; budget, dry run, key hygiene, CLI, vendor diff."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import schemathesis

from contracts import cli
from contracts.budget import Budget, BudgetExhausted
from contracts.catalog import fetch_catalog
from contracts.checks import identify_code
from contracts.coverage import Planner
from contracts.drift import compare_specs, load_document
from contracts.model import CaseResult
from contracts.negative import SERVER_SIDE, STATE_DEPENDENT
from contracts.runner import Runner, RunOptions
from contracts.target import MOCK_KEY, Target, embedded_mock_app, open_target
from mockserver import Engine
from mockserver.serving import serve
from mockserver.spec import load_spec
from tests.contracts_support.drift_apps import Rewrite

pytestmark = pytest.mark.socket

SUPPORT = Path(__file__).parent / "contracts_support"
VENDOR_COPY = SUPPORT / "vendor-openapi.json"


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NANOGPT_API_KEY", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _spent_on(app: Any) -> Decimal:
    engine: Engine = app.state.engine
    return Decimal("1000000") - engine.ledger.balance(MOCK_KEY)


def test_the_bundled_mock_conforms_and_every_documented_code_is_provoked() -> None:
    # how long a run takes is a benchmark figure (README), not a test verdict
    with open_target() as target:
        result = Runner(target, RunOptions()).run()
    assert result.ok, [f.key for f in result.findings]
    assert result.stopped is None
    phases = {c.phase for c in result.cases}
    assert phases == {"catalog", "coverage", "schema", "domain", "negative"}
    # every documented (operation, code) was provoked, and only the mock-only ones were forced
    spec = load_spec()
    provoked = {c.name for c in result.cases if c.phase == "negative" and c.status == "passed"}
    documented = {f"{op.operation_id} {t.status} {code}" for op in spec.operations for code, t in op.errors.items()}
    assert provoked == documented
    forced = {tuple(c.name.split()[::2]) for c in result.cases if c.note == "forced with Prefer (mock)"}
    server_side = SERVER_SIDE
    # no request field to get wrong: these operations answer 400 only to a malformed mock-only Prefer
    no_input = {
        "imagesListModels",
        "imagesListModelEndpoints",
        "checkMidjourneyStatus",
        "legacyListModels",
        "legacyListModelsImage",
        "x402PaymentStatus",
        "x402CompletePayment",
    }
    for op_id, code in forced:
        assert (
            code in server_side
            or code in STATE_DEPENDENT
            or (op_id, code) == ("imagesGenerate", "image_input_too_large")
            or (op_id, code) == ("x402CompletePayment", "x402_payment_required")  # needs a stored quote
            or (op_id in no_input and code == "invalid_parameter_value")
        ), (op_id, code)


def test_a_tiny_budget_stops_the_run_before_it_is_exceeded() -> None:
    app = embedded_mock_app()
    with open_target(app=app) as target:
        result = Runner(target, RunOptions(budget_usd=0.03, schema_examples=4, domain_examples=3)).run()
    assert result.stopped and result.stopped.startswith("budget:")
    assert result.spent_usd <= 0.03
    assert _spent_on(app) <= Decimal("0.03")  # what the mock really charged
    assert result.ok  # stopping is not a failure ...
    assert cli._exit(result) == cli.EXIT_STOPPED  # ... but not a full pass either


def test_max_requests_caps_the_run() -> None:
    with open_target() as target:
        result = Runner(target, RunOptions(max_requests=15, schema_examples=4)).run()
    assert result.stopped and "request cap" in result.stopped
    assert result.requests == 15


def test_budget_reserves_before_sending_and_settles_to_the_reported_cost() -> None:
    budget = Budget(limit_usd=0.10, max_requests=None)
    budget.reserve(0.06, "first")
    budget.settle(0.06, 0.04)
    budget.reserve(0.06, "second")
    with pytest.raises(BudgetExhausted, match="third"):
        budget.reserve(0.01, "third")


def test_dry_run_prices_the_plan_and_sends_no_request_to_the_api() -> None:
    app = embedded_mock_app()
    with open_target(app=app) as target:
        result = Runner(target, RunOptions(dry_run=True, schema_examples=3, domain_examples=2)).run()
    journal = app.state.engine.journal.entries()
    assert {e["operation_id"] for e in journal} <= {
        "imagesListModels",
        "imagesListModelEndpoints",
        "legacyListImageModels",
    }
    assert all(e["key_id"] is None for e in journal)  # the catalog reads are anonymous
    assert result.plan and sum(p.estimate_usd for p in result.plan) > 0
    assert _spent_on(app) == 0


def test_a_live_target_gets_cheap_positives_and_skips_what_only_the_server_can_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A served mock whose admin API is hidden looks like the live API: the live rules apply."""
    app = embedded_mock_app()
    hidden = Rewrite(app, raw_response=lambda p, s, b: (404, b"{}") if p.startswith("/_mock/clock") else (s, b))
    monkeypatch.setenv("NANOGPT_API_KEY", MOCK_KEY)
    with serve(hidden) as server, open_target(server.base_url) as target:
        assert target.live
        result = Runner(target, RunOptions(budget_usd=0.25, schema_examples=3, domain_examples=2)).run()
    assert result.ok, [f.key for f in result.findings]
    skipped = {c.name.split()[-1] for c in result.cases if c.note == "not provokable live"}
    assert {"server_error", "rate_limit_exceeded", "insufficient_balance"} <= skipped
    charged = [e for e in app.state.engine.journal.entries() if e["cost"]]
    with open_target() as local:
        catalog = fetch_catalog(local)
    # the cheapest model able to serve each kind of request (text, image input, seed), and for the
    # coverage facets the cheapest model supporting each
    cheapest = {m.id for m in (catalog.cheapest(), catalog.cheapest(inputs=1), catalog.cheapest(seed=True)) if m}
    cheapest |= {f.request.fields["model"] for f in Planner(load_spec(), catalog).facets() if f.request}
    cheapest |= {"nsfw-classifier"}  # the only NSFW classifier ($0.0015 per image)
    assert charged and {e["model"] or "pruna-ai/p-image/text-to-image" for e in charged} <= cheapest | {None}
    assert float(_spent_on(app)) <= 0.25


def test_429_with_retry_after_is_waited_out() -> None:
    calls = {"n": 0}

    def first_429(path: str, status: int, raw: bytes) -> tuple[int, bytes]:
        if path == "/api/v1/images/models":
            calls["n"] += 1
            if calls["n"] == 1:
                return 429, b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
        return status, raw

    app = Rewrite(embedded_mock_app(), raw_response=first_429)
    waits: list[float] = []
    with serve(app) as server:
        target = Target(server.base_url, MOCK_KEY, "url", sleep=waits.append)
        response = target.request("GET", "/api/v1/images/models")
        target.close()
    assert response.status_code == 200
    assert calls["n"] == 2 and waits == [1.0]  # no Retry-After: one second, then again


def test_the_key_never_reaches_reports_or_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-live-SECRET-0123456789abcdef"
    monkeypatch.setenv("NANOGPT_API_KEY", secret)
    app = Rewrite(embedded_mock_app(secret), response=lambda p, s, b: (s, b))
    args = [
        "--examples",
        "3",
        "--domain-examples",
        "2",
        "-q",
        "--junit",
        str(tmp_path / "j.xml"),
        "--markdown",
        str(tmp_path / "m.md"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert cli.main(["record", "-o", str(tmp_path / "snap.json"), *args], app=app) == 0
    for name in ("j.xml", "m.md", "r.json", "snap.json"):
        text = (tmp_path / name).read_text()
        assert secret not in text, name
    assert "b64_json" not in json.loads((tmp_path / "snap.json").read_text()).get("image_hashes", [])


def test_cli_run_writes_junit_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "run",
            "--examples",
            "3",
            "--domain-examples",
            "2",
            "--junit",
            str(tmp_path / "j.xml"),
            "--markdown",
            str(tmp_path / "m.md"),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    suites = ET.parse(tmp_path / "j.xml").getroot()
    assert int(sum(int(s.get("failures", "0")) for s in suites)) == 0
    assert "✅ conforms" in (tmp_path / "m.md").read_text()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] is True and data["summary"]["failed"] == 0
    assert "PASS [negative]" in capsys.readouterr().out  # live progress, on stdout


def test_cli_dry_run_prints_the_plan_not_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--dry-run", "--examples", "2", "--domain-examples", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PLAN [domain] openaiGenerateImage ~$" in out
    assert "PASS" not in out and "FAIL" not in out
    assert "nothing was sent" in out.splitlines()[-1]


def test_cli_record_then_diff_with_a_baseline(tmp_path: Path) -> None:
    from tests.contracts_support.drift_apps import VARIANTS

    fast = ["--examples", "2", "--domain-examples", "2", "-q"]
    snap, baseline = tmp_path / "snap.json", tmp_path / "baseline.json"
    assert cli.main(["record", "-o", str(snap), *fast], app=embedded_mock_app()) == 0
    drifted = next(v for v in VARIANTS if v.name == "price changed")
    report = tmp_path / "drift.md"
    code = cli.main(["diff", "--snapshot", str(snap), "--markdown", str(report), *fast], app=drifted.build())
    assert code == cli.EXIT_FAILED
    assert "`price_changed`" in report.read_text() and "hidream" in report.read_text()
    args = ["diff", "--snapshot", str(snap), "--baseline", str(baseline), *fast]
    assert cli.main([*args, "--update-baseline"], app=drifted.build()) == 0
    assert cli.main(args, app=drifted.build()) == 0  # accepted drift no longer fails
    assert cli.main(args, app=embedded_mock_app()) == 0


def test_a_url_target_needs_the_key_from_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--base-url", "http://127.0.0.1:9", "--key-env", "NO_SUCH_CONTRACT_KEY"]) == 2
    assert "NO_SUCH_CONTRACT_KEY" in capsys.readouterr().err


def test_vendor_diff_reports_disagreements_on_shared_operations(tmp_path: Path) -> None:
    ours = dict(load_spec().document)
    vendor = load_document(str(VENDOR_COPY))
    baseline = compare_specs(ours, vendor)
    assert baseline and {f.operation_id for f in baseline} >= {"openaiGenerateImageApi", "openaiEditImage"}
    changed = copy.deepcopy(vendor)
    body = changed["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = changed["components"]["schemas"][name]
    schema["properties"]["vendor_only_knob"] = {"type": "string"}
    schema["properties"]["n"] = {"type": "string"}
    findings = {(f.check, f.path) for f in compare_specs(ours, changed)}
    assert ("vendor_field_only_in_vendor", "requestBody.application/json.vendor_only_knob") in findings
    assert ("vendor_type_differs", "requestBody.application/json.n") in findings
    out = tmp_path / "vendor.json"
    assert cli.main(["vendor-diff", "--vendor", str(VENDOR_COPY), "--json", str(out)]) == cli.EXIT_FAILED
    assert json.loads(out.read_text())["summary"]["drift"] == len(baseline)


@pytest.mark.skipif(
    not (Path(__file__).parents[2] / "shared/reference/vendor-docs/openapi.json").is_file(),
    reason="the vendor's full document is not beside the repository",
)
def test_vendor_diff_on_the_full_published_document() -> None:
    vendor = load_document(str(Path(__file__).parents[2] / "shared/reference/vendor-docs/openapi.json"))
    assert compare_specs(dict(load_spec().document), vendor)


def test_domain_checks_are_registered_with_schemathesis() -> None:
    from schemathesis.checks import CHECKS

    names = set(CHECKS.get_all_names())
    assert {"nanogpt_error_contract", "nanogpt_images", "nanogpt_billing"} <= names
    assert schemathesis.__version__.startswith("4.")


def test_error_codes_are_identified_in_every_envelope() -> None:
    spec = load_spec()
    for op in spec.operations:
        for code, template in op.errors.items():
            assert identify_code(op, template.status, dict(template.body)) == code, (op.operation_id, code)


def test_progress_lines_are_emitted_per_case() -> None:
    seen: list[CaseResult] = []
    with open_target() as target:
        Runner(target, RunOptions(phases=("negative",), operations={"imagesListModels"}, progress=seen.append)).run()
    codes = load_spec().by_id["imagesListModels"].errors
    assert [c.phase for c in seen] == ["catalog"] + ["negative"] * len(codes)
