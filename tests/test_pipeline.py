"""The pipeline's stages as plain functions: each returns a value and can be driven without HTTP."""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path

import pytest

from mockserver import Engine, MockConfig, MockRequest
from mockserver.billing import Charge
from mockserver.controls import FaultProfile, Faults, QueuedFault, resolve_directives
from mockserver.engine import NonConformingResponse
from mockserver.errors import MockError
from mockserver.messages import Outcome
from mockserver.spec import load_spec
from mockserver.state import Ledger
from mockserver.validation import validate

ROOT = Path(__file__).resolve().parent.parent
SPEC = load_spec()
KEY = "sk-pipeline"


def post(path: str, body: dict[str, object], **headers: str) -> MockRequest:
    return MockRequest(
        "POST",
        path,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json", **headers},
        body=json.dumps(body).encode(),
    )


def test_validation_applies_the_spec_defaults_and_remembers_what_was_given() -> None:
    operation = SPEC.by_id["openaiGenerateImage"]
    request = post("/v1/images/generations", {"prompt": "x", "size": "1024x1024"})
    inp = validate(operation, request.method, request.headers, request.query, request.body)
    schema = SPEC.resolve(SPEC.document["components"]["schemas"]["OpenAIImageGenerationRequest"])
    for name in ("model", "n", "response_format"):
        assert inp.body[name] == schema["properties"][name]["default"]
    assert inp.given == {"prompt", "size"}


def test_validation_defaults_query_parameters_too() -> None:
    operation = SPEC.by_id["legacyListImageModels"]
    inp = validate(operation, "GET", {}, (), b"")
    assert inp.query == {"detailed": True}


def test_a_charge_left_by_an_exception_is_refunded_once() -> None:
    ledger, faults = Ledger(Decimal("1")), Faults(FaultProfile(daily_usd_limit=Decimal("0.5")))
    charge = Charge(ledger, faults, KEY, Decimal("0.25"), 0.0)
    assert ledger.balance(KEY) == Decimal("0.75")

    def render_fails() -> None:
        with charge:
            raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        render_fails()
    assert charge.refunded and ledger.balance(KEY) == Decimal("1")
    charge.refund()
    assert ledger.balance(KEY) == Decimal("1")
    # the daily spend was given back as well: two more charges of 0.25 fit the 0.5 limit
    Charge(ledger, faults, KEY, Decimal("0.25"), 0.0).settle()
    settled = Charge(ledger, faults, KEY, Decimal("0.25"), 0.0)
    settled.settle()
    settled.refund()  # too late: the answer left
    assert ledger.balance(KEY) == Decimal("0.5")
    with pytest.raises(MockError) as over:
        Charge(ledger, faults, KEY, Decimal("0.01"), 0.0)
    assert over.value.code == "daily_usd_limit_exceeded" and ledger.balance(KEY) == Decimal("0.5")


def test_a_refused_charge_moves_no_money() -> None:
    ledger, faults = Ledger(Decimal("0.1")), Faults(FaultProfile(daily_usd_limit=Decimal("5")))
    with pytest.raises(MockError) as refused:
        Charge(ledger, faults, KEY, Decimal("0.2"), 0.0)
    assert refused.value.code == "insufficient_balance" and ledger.balance(KEY) == Decimal("0.1")
    Charge(ledger, faults, KEY, Decimal("0.1"), 0.0).settle()  # the refused attempt left no daily spend behind
    assert ledger.balance(KEY) == 0


def test_controls_resolve_to_one_value_with_its_source() -> None:
    operation = SPEC.by_id["openaiGenerateImage"]
    faults = Faults()
    faults.enqueue(QueuedFault.from_dict({"code": "rate_limit_exceeded"}))
    prefer = resolve_directives(faults, operation, "/v1/images/generations", "code=500", KEY, 0.0)
    assert (prefer.code, prefer.source) == ("server_error", "prefer")
    queued = resolve_directives(faults, operation, "/v1/images/generations", None, KEY, 0.0)
    assert (queued.code, queued.source) == ("rate_limit_exceeded", "queue")
    assert resolve_directives(faults, operation, "/v1/images/generations", None, KEY, 0.0).empty
    faults.set_profile(FaultProfile(error_rate=1.0, error_codes=("service_unavailable",)))
    drawn = resolve_directives(faults, operation, "/v1/images/generations", None, KEY, 0.0)
    assert (drawn.code, drawn.source) == ("service_unavailable", "profile")
    plain = resolve_directives(Faults(), operation, "/", None, KEY, 0.0, presign_failure=True)
    assert plain.presign_failure and plain.code is None


def test_a_failure_after_the_charge_refunds_it() -> None:
    engine = Engine(MockConfig(balance=Decimal("1")))

    def broken(*args: object, **kwargs: object) -> bytes:
        raise MemoryError("renderer out of memory")

    engine.renderer.render_b64_json = broken  # type: ignore[method-assign]
    with pytest.raises(MemoryError):
        engine.handle(post("/v1/images/generations", {"prompt": "x", "model": "hidream"}))
    assert engine.ledger.balance(KEY) == Decimal("1")


def test_response_checking_is_an_engine_option() -> None:
    engine = Engine(MockConfig(check_responses=True))
    operation = SPEC.by_id["imagesListModels"]
    request = MockRequest("GET", operation.path)
    with pytest.raises(NonConformingResponse, match="required property"):
        engine.render(operation, Outcome(200, {"unexpected": True}), engine.controls(operation, request, None), request)
    assert engine.handle(request).status == 200


def test_every_stage_answers_without_http() -> None:
    engine = Engine(MockConfig())
    request = post("/v1/images/generations", {"prompt": "a lighthouse", "seed": 3})
    match = engine.route(request)
    key = engine.authenticate(match.operation, request)
    directives = engine.controls(match.operation, request, key)
    inp = engine.validate(match.operation, request)
    assert (match.operation.operation_id, key, directives.empty, inp.body["model"]) == (
        "openaiGenerateImage",
        KEY,
        True,
        "hidream",
    )
    response = engine.handle(request)
    assert response.status == 200 and response.charge is not None and response.charge.open
    entry = engine.journal.entries()[-1]
    assert entry["cost"] == float(response.charge.cost) and len(entry["images"]) == 1


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_spec_index_imports_no_other_mockserver_module() -> None:
    assert not [name for name in _imports(ROOT / "mockserver" / "spec.py") if name.startswith(".")]


def test_contracts_use_only_public_mockserver_modules() -> None:
    private = {
        (path.name, name)
        for path in (ROOT / "contracts").rglob("*.py")
        for name in _imports(path)
        if name.startswith("mockserver.") and any(part.startswith("_") for part in name.split(".")[1:])
    }
    assert not private
