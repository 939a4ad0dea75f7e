"""Orchestrates one run: catalog, schemathesis over the spec, the domain suite, the negative suite.

Every request goes through ``Runner`` so that it is priced and counted before it is sent (budget),
its response is validated by schemathesis (its default checks plus ``contracts.checks``), and what
it taught about the target's shapes is kept for snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import CustomFailure, Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mockserver.spec import Spec, load_spec, without_mock_only

from . import checks as domain
from .budget import GENERATING, Budget, BudgetExhausted, estimate_usd, expected_usd
from .catalog import TargetCatalog, fetch_catalog
from .model import CaseResult, Finding, PlannedRequest, RunResult
from .negative import INVALID_KEY, NegativeCase, negative_cases
from .snapshot import ShapeBook
from .strategies import DomainRequest, near_miss, positive_requests
from .target import Target, retry_after_seconds

# the free negative suite first, then the planned coverage, then the generated data: under a budget the
# cheapest evidence is gathered before the budget runs out
PHASES = ("negative", "coverage", "schema", "domain")
ANY_KEY_NOTE = "not provokable: the target accepts any key (its admin API says auth_policy any_key)"
# statuses a schema-valid request may still get: the spec cannot hold catalog rules (models, sizes,
# image decoding, balances), so these refusals are not "rejected positive data" here; the domain
# suite holds realistic valid requests to 2xx instead.
CATALOG_DEPENDENT_STATUSES = ["2xx", "400", "401", "402", "403", "404", "413", "429"]
SAFE_CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)


@dataclass
class RunOptions:
    """What to run and how hard; the defaults fit the mock in CI (seconds, not minutes)."""

    phases: tuple[str, ...] = PHASES
    operations: set[str] | None = None
    schema_examples: int = 12
    domain_examples: int = 6
    budget_usd: float | None = None
    max_requests: int | None = None
    cheap: bool | None = None  # positive cases on the cheapest model, smallest size, n=1 (default: live)
    dry_run: bool = False
    spec_path: Path | None = None
    progress: Callable[[CaseResult], None] | None = None


PAID_ADD_ON_HEADERS = frozenset({"moderation", "moderation-model"})  # inline moderation: billed on its own


def schemathesis_schema(spec: Spec) -> Any:
    """The spec as schemathesis sees it: mock-only parameters (``x-mock-only``) removed, and the inline
    moderation headers too (a paid add-on the budget does not price; the negative suite probes them)."""
    document = without_mock_only(spec.document)
    parameters = document.get("components", {}).get("parameters", {})
    paid = {
        f"#/components/parameters/{k}"
        for k, v in parameters.items()
        if str(v.get("name", "")).lower() in PAID_ADD_ON_HEADERS
    }
    for item in document.get("paths", {}).values():
        for op in item.values():
            if isinstance(op, dict) and isinstance(op.get("parameters"), list):
                op["parameters"] = [p for p in op["parameters"] if p.get("$ref") not in paid]
    config = SchemathesisConfig.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": CATALOG_DEPENDENT_STATUSES}}}
    )
    return schemathesis.openapi.from_dict(document, config=config)


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts or []:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def failure_findings(group: FailureGroup, operation_id: str | None, status: int | None) -> list[Finding]:
    """schemathesis failures as findings; our own checks' failures are already structured."""
    out: list[Finding] = []
    for failure in group.exceptions:
        if isinstance(failure, CustomFailure) and any(n in failure.title for n in domain.DOMAIN_CHECK_NAMES):
            continue
        name = failure.checks[0] if isinstance(failure, Failure) and failure.checks else type(failure).__name__
        path = None
        instance_path = getattr(failure, "instance_path", None)
        if instance_path is not None and name == "response_schema_conformance":
            path = _json_path(instance_path)
        message = str(getattr(failure, "title", "")) + ": " + str(getattr(failure, "message", "")).strip()
        out.append(Finding(name, message[:600], operation_id=operation_id, status=status, path=path))
    return out


@dataclass
class Runner:
    target: Target
    options: RunOptions = field(default_factory=RunOptions)
    spec: Spec = field(init=False)
    catalog: TargetCatalog | None = field(init=False, default=None)
    budget: Budget = field(init=False)
    shapes: ShapeBook = field(init=False)
    env: domain.CheckEnvironment = field(init=False)
    result: RunResult = field(init=False)

    def __post_init__(self) -> None:
        self.spec = load_spec(self.options.spec_path)
        self.budget = Budget(self.options.budget_usd, self.options.max_requests)
        self.shapes = ShapeBook(self.spec)
        self.env = domain.CheckEnvironment(self.spec, client=httpx.Client(timeout=self.target.timeout_s))
        self.result = RunResult(
            self.target.describe(), budget_usd=self.options.budget_usd, dry_run=self.options.dry_run
        )
        self._schema: Any = None
        self.recorded_images: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        """The redacted snapshot of what this run saw (catalogs, shapes, codes, image facts)."""
        from .snapshot import build_snapshot

        return build_snapshot(self.result.target, self.catalog, self.shapes, self.recorded_images)

    @property
    def cheap(self) -> bool:
        return self.target.live if self.options.cheap is None else self.options.cheap

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> RunResult:
        started = time.perf_counter()
        with domain.use_environment(self.env):
            try:
                self._catalog_case()
                for phase in self.options.phases:
                    getattr(self, f"_phase_{phase}")()
            except BudgetExhausted as exc:
                self.result.stopped = self.target.redact(str(exc))
        self.result.requests = self.budget.requests
        self.result.spent_usd = self.budget.spent_usd
        self.result.duration_s = time.perf_counter() - started
        if self.env.client is not None:
            self.env.client.close()
        return self.result

    def _emit(self, case: CaseResult) -> None:
        self.result.cases.append(case)
        if self.options.progress:
            self.options.progress(case)

    def _catalog_case(self) -> None:
        case = CaseResult("catalog", "catalogs are readable and conform", None)
        started = time.perf_counter()
        self.catalog = fetch_catalog(self.target)
        self.env.catalog = self.catalog
        raw = self.catalog.raw
        bodies = [("imagesListModels", raw.get("models"))]
        bodies += [("imagesListModelEndpoints", body) for body in raw.get("endpoints", {}).values()]
        bodies.append(("legacyListImageModels", raw.get("legacy")))
        for op_id, body in bodies:
            self.shapes.observe(op_id, 200, None, body)
            for problem in self.spec.response_problems(op_id, 200, "application/json", body):
                case.fail(Finding("response_schema_conformance", problem, operation_id=op_id, status=200))
        if not self.catalog.models:
            case.fail(Finding("catalog_models", "GET /api/v1/images/models lists no model", "imagesListModels"))
        case.requests = 2 + len(raw.get("endpoints", {}))
        case.duration_s = time.perf_counter() - started
        self._emit(case)

    # -- sending -----------------------------------------------------------------------------------
    def _auth(self, scheme: str, operation_id: str) -> dict[str, str]:
        if scheme == "none":
            return {}
        if scheme == "invalid":
            op = self.spec.by_id[operation_id]
            bearer = any(s.kind == "bearer" for alt in op.security for s in alt)
            return {"Authorization": f"Bearer {INVALID_KEY}"} if bearer else {"x-api-key": INVALID_KEY}
        return self.target.auth_headers(scheme)

    def send(
        self,
        request: DomainRequest,
        result: CaseResult,
        phase: str,
        *,
        free: bool = False,
        record: bool = False,
        exclude: tuple[Any, ...] = (),
    ) -> httpx.Response | None:
        """Price, send, validate; findings land in ``result``. None in a dry run."""
        op_id = request.operation_id
        estimate = 0.0 if free else estimate_usd(self.catalog, op_id, request.fields)
        if self.options.dry_run:
            self.budget.reserve(estimate, f"{op_id} ({request.label or phase})")  # what would stop the run
            expected = 0.0 if free else expected_usd(self.catalog, op_id, request.fields)
            summary = self.target.redact(request.summary())
            self.result.plan.append(PlannedRequest(phase, op_id, summary, expected, estimate))
            return None
        self.budget.reserve(estimate, f"{op_id} ({request.label or phase})")
        path = request.path
        for name, value in request.path_params.items():
            path = path.replace("{" + name + "}", quote(value, safe="/"))
        headers = {**request.headers, **self._auth(request.auth, op_id)}
        expected_429 = "Prefer" in request.headers
        kwargs = request.httpx_kwargs()
        headers.update(kwargs.pop("headers_extra", {}))
        response = self.target.request(request.method, path, headers=headers, retry_429=not expected_429, **kwargs)
        result.requests += 1
        response.request.read()  # multipart bodies are streamed; schemathesis reads the request back
        self._settle(estimate, response, result)
        body = domain.json_body(response)
        code = None
        if response.status_code >= 400:
            code = domain.identify_code(self.spec.by_id[op_id], response.status_code, body) or domain.raw_code(body)
        if record:
            self.shapes.observe(op_id, response.status_code, code, body)
        seen_images = len(self.env.images)
        operation = self._operation(op_id)
        media = None
        if request.raw is None and request.method != "GET":
            media = "multipart/form-data" if request.multipart else "application/json"
        case = operation.Case(
            path_parameters=request.path_params or None,
            headers=headers,
            query=request.query or None,
            body=dict(request.fields) if request.raw is None and request.method != "GET" else schemathesis_not_set(),
            media_type=media,
        )
        self._validate(case, response, result, op_id, checks=[c for c in SAFE_CHECKS if c not in exclude])
        if record:
            self.recorded_images.extend(self.env.images[seen_images:])
        return response

    def _settle(self, estimate: float, response: Any, result: CaseResult) -> None:
        body = domain.json_body(response) if hasattr(response, "content") else None
        status = int(response.status_code)
        cost = body.get("cost") if isinstance(body, dict) and 200 <= status < 300 else None
        actual = float(cost) if isinstance(cost, (int, float)) else (estimate if 200 <= status < 300 else 0.0)
        self.budget.settle(estimate, actual)
        result.cost_usd += actual

    def _operation(self, op_id: str) -> Any:
        if self._schema is None:
            self._schema = schemathesis_schema(self.spec)
        return self._schema.find_operation_by_id(op_id)

    def _validate(
        self,
        case: Any,
        response: Any,
        result: CaseResult,
        op_id: str,
        checks: list[Any] | None,
        headers: dict[str, str] | None = None,
        excluded: list[Any] | None = None,
    ) -> None:
        status = int(response.status_code)
        try:
            case.validate_response(
                response,
                headers=headers,
                excluded_checks=excluded,
                checks=[*checks, *domain.DOMAIN_CHECKS] if checks is not None else None,
                transport_kwargs={"base_url": self.target.base_url, "session": self.target.session},
            )
        except FailureGroup as group:
            for finding in failure_findings(group, op_id, status):
                result.fail(self._redacted(finding))
        for finding in self.env.take_findings():
            result.fail(self._redacted(finding))

    def _redacted(self, finding: Finding) -> Finding:
        redact = self.target.redact
        return Finding(
            finding.check,
            redact(finding.message),
            finding.operation_id,
            finding.status,
            finding.path,
            finding.code,
            finding.model,
            finding.kind,
        )

    # -- phase 0: every documented value once, each on the cheapest model that supports it -------------
    def _phase_coverage(self) -> None:
        from .coverage import Planner, coverage_summary

        assert self.catalog is not None
        facets = Planner(self.spec, self.catalog).facets()
        covered: set[str] = set()
        for facet in sorted(facets, key=lambda f: (f.estimate_usd, f.name)):
            request = facet.request
            if request is None:
                continue
            if self.options.operations is not None and request.operation_id not in self.options.operations:
                facet.reason = "its operation is not selected (--operations)"
                continue
            result = CaseResult("coverage", facet.name, request.operation_id)
            started = time.perf_counter()
            try:
                response = self.send(request, result, "coverage")
            except BudgetExhausted as exc:
                facet.reason = f"over budget ({self.target.redact(str(exc))})"
                result.status, result.note = "skipped", facet.reason
                self._emit(result)
                continue
            if response is None or 200 <= response.status_code < 300:
                covered.add(facet.name)
            else:
                facet.reason = f"the target answered {response.status_code}"
                self._domain_case_failed(request, response, result)
            result.duration_s = time.perf_counter() - started
            self._emit(result)
        self.result.coverage = coverage_summary(facets, covered)

    def _domain_case_failed(self, request: DomainRequest, response: httpx.Response, result: CaseResult) -> None:
        body = domain.json_body(response)
        code = domain.raw_code(body) or (body.get("error") if isinstance(body, dict) else None)
        result.fail(
            Finding(
                "valid_request_accepted",
                self.target.redact(f"{request.summary()} -> {response.status_code} {code}"),
                request.operation_id,
                response.status_code,
                code=str(code) if code else None,
                model=str(request.fields.get("model")),
            )
        )

    # -- phase 1: schemathesis over the spec ----------------------------------------------------
    def _phase_schema(self) -> None:
        schema = self._operation_schema()
        for item in schema.get_all_operations():
            operation = item.ok()
            op_id = operation.definition.raw.get("operationId")
            if self.options.operations is not None and op_id not in self.options.operations:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                result = CaseResult("schema", f"{operation.label} [{mode.value}]", op_id)
                started = time.perf_counter()
                strategy = operation.as_strategy(generation_mode=mode)
                if mode == GenerationMode.POSITIVE:
                    # the spec's own request examples come first: a few draws always include a request the
                    # API accepts, so checks of accepted answers (ignored_auth, billing) never hang on luck
                    examples = operation.get_strategies_from_examples()
                    if examples:
                        strategy = st.one_of(*examples, strategy)

                run = self._schema_test(strategy, mode, result)

                try:
                    run()
                except (Unsatisfiable, FailedHealthCheck):
                    if not result.requests:
                        result.status, result.note = "skipped", "no data of this kind can be generated"
                result.duration_s = time.perf_counter() - started
                self._emit(result)

    def _schema_test(self, strategy: Any, mode: GenerationMode, result: CaseResult) -> Callable[[], None]:
        @settings(
            max_examples=self.options.schema_examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(strategy)
        def run(case: Any) -> None:
            self._schema_case(case, mode, result)

        return run  # type: ignore[no-any-return]

    def _operation_schema(self) -> Any:
        if self._schema is None:
            self._schema = schemathesis_schema(self.spec)
        return self._schema

    def _schema_case(self, case: Any, mode: GenerationMode, result: CaseResult) -> None:
        op_id = case.operation.definition.raw.get("operationId")
        op = self.spec.by_id[op_id]
        # one explicit credential (so schemathesis' ignored_auth probes it); the x402 quote is the negative suite's
        schemes = [s for alternative in op.security for s in alternative]
        dropped = {"x-x402", *("authorization" if s.kind == "bearer" else s.header for s in schemes)}
        generated = dict(case.headers or {})
        case.headers = {k: v for k, v in generated.items() if k.lower() not in dropped}
        auth: dict[str, str] = {}
        if schemes:
            scheme = next((s for s in schemes if s.kind == "bearer"), schemes[0])
            auth = self.target.auth_headers("bearer" if scheme.kind == "bearer" else "x-api-key")
            case.headers.update(auth)  # also in the case, or schemathesis re-labels it a negative case
        if self.cheap and op_id in GENERATING and isinstance(case.body, dict) and mode.is_positive:
            self._clamp(case.body)
        estimate = estimate_usd(self.catalog, op_id, case.body)
        what = f"{op_id} (schemathesis {mode.value})"
        if self.options.dry_run:
            summary = f"{case.method} {case.formatted_path} (generated, {mode.value})"
            self.budget.reserve(estimate, what)
            # data that breaks the schema is refused before anything is charged
            expected = expected_usd(self.catalog, op_id, case.body) if mode.is_positive else 0.0
            self.result.plan.append(PlannedRequest("schema", op_id, summary, expected, estimate))
            return
        self.budget.reserve(estimate, what)
        kwargs = {
            "base_url": self.target.base_url,
            "session": self.target.session,
            "timeout": self.target.timeout_s,
            "headers": auth,
        }
        response = case.call(**kwargs)
        attempts = 0
        while response.status_code == 429 and attempts < self.target.max_retries_429:
            wait = retry_after_seconds(
                response.headers.get("retry-after", [None])[0]
                if isinstance(response.headers.get("retry-after"), list)
                else response.headers.get("retry-after")
            )
            if wait is None or wait > 60:
                break
            self.target.sleep(wait)
            attempts += 1
            response = case.call(**kwargs)
        result.requests += 1
        self._settle(estimate, response, result)
        excluded = [ignored_auth] if self.target.accepts_any_key else None
        self._validate(case, response, result, op_id, checks=None, headers=auth, excluded=excluded)

    def _clamp(self, body: dict[str, Any]) -> None:
        """Live safety: a generated positive request is sent on the cheapest model, smallest size, n=1."""
        assert self.catalog is not None
        model = self.catalog.cheapest()
        if model is None:
            return
        body["model"] = model.id
        for name in ("size", "resolution", "aspect_ratio", "width", "height", "quality"):
            body.pop(name, None)
        for name in ("n", "nImages"):
            if name in body:
                body[name] = 1

    # -- phase 2: realistic requests from the catalog -----------------------------------------------
    def _phase_domain(self) -> None:
        assert self.catalog is not None
        if not self.catalog.models:
            return
        strategies = positive_requests(self.catalog, self.cheap, cap=1 if self.cheap else 2)
        for op_id, strategy in strategies.items():
            if self.options.operations is not None and op_id not in self.options.operations:
                continue
            self._given(f"{op_id} realistic requests", op_id, strategy, self._domain_case)
        if self.options.operations is None or "imagesGenerate" in self.options.operations:
            self._given(
                "imagesGenerate near-miss requests are refused",
                "imagesGenerate",
                near_miss(self.catalog),
                self._near_miss_case,
                examples=max(2, self.options.domain_examples),
            )
            self._scenarios()

    def _given(
        self,
        name: str,
        op_id: str,
        strategy: st.SearchStrategy[DomainRequest],
        body: Callable[[DomainRequest, CaseResult], None],
        examples: int | None = None,
    ) -> None:
        result = CaseResult("domain", name, op_id)
        started = time.perf_counter()

        @settings(
            max_examples=examples or self.options.domain_examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        @given(strategy)
        def run(request: DomainRequest) -> None:
            body(request, result)

        try:
            run()
        except LookupError as exc:
            result.status, result.note = "skipped", str(exc)
        result.duration_s = time.perf_counter() - started
        self._emit(result)

    def _domain_case(self, request: DomainRequest, result: CaseResult) -> None:
        response = self.send(request, result, "domain")
        if response is not None and not 200 <= response.status_code < 300:
            self._domain_case_failed(request, response, result)

    def _near_miss_case(self, request: DomainRequest, result: CaseResult) -> None:
        response = self.send(request, result, "domain", free=True)
        if response is not None and 200 <= response.status_code < 300:
            result.fail(
                Finding(
                    "near_miss_rejected",
                    f"{request.label}: {request.summary()} was accepted",
                    request.operation_id,
                    response.status_code,
                    model=str(request.fields.get("model")),
                )
            )

    def _scenarios(self) -> None:
        """Deterministic requests whose answers are compared with each other (and kept for snapshots)."""
        assert self.catalog is not None
        seeded = self.catalog.cheapest(seed=True)
        cheapest = self.catalog.cheapest()
        multi = [
            m for m in self.catalog.models.values() if m.n_max >= 2 and not m.fixed_image_count and m.unit_prices()
        ]
        plural = min(multi, key=lambda m: (m.cheapest_price, m.id)) if multi else None
        runs: list[tuple[str, list[DomainRequest]]] = []
        if cheapest is not None:
            base = {"model": cheapest.id, "prompt": "contract scenario"}
            runs.append(
                (
                    "a returned URL downloads an image",
                    [DomainRequest("imagesGenerate", "POST", "/api/v1/images", {**base, "response_format": "url"})],
                )
            )
            runs.append(
                (
                    "remainingBalance drops by cost",
                    [
                        DomainRequest("imagesGenerate", "POST", "/api/v1/images", dict(base)),
                        DomainRequest("openaiGenerateImage", "POST", "/v1/images/generations", dict(base)),
                    ],
                )
            )
        if seeded is not None:
            body = {"model": seeded.id, "prompt": "contract scenario", "seed": 1234}
            runs.append(
                (
                    "the same seed gives the same bytes",
                    [
                        DomainRequest("imagesGenerate", "POST", "/api/v1/images", dict(body)),
                        DomainRequest("imagesGenerate", "POST", "/api/v1/images", dict(body)),
                    ],
                )
            )
        if plural is not None:
            runs.append(
                (
                    "nImages beats n",
                    [
                        DomainRequest(
                            "imagesGenerate",
                            "POST",
                            "/api/v1/images",
                            {"model": plural.id, "prompt": "contract scenario", "n": 1, "nImages": 2},
                        )
                    ],
                )
            )
        for name, requests in runs:
            result = CaseResult("domain", name, requests[0].operation_id)
            started = time.perf_counter()
            for request in requests:
                response = self.send(request, result, "domain", record=True)
                if response is not None and not 200 <= response.status_code < 300:
                    result.fail(
                        Finding(
                            "valid_request_accepted",
                            f"{request.summary()} -> {response.status_code}",
                            request.operation_id,
                            response.status_code,
                        )
                    )
            result.duration_s = time.perf_counter() - started
            self._emit(result)
        if seeded is None:
            self._emit(
                CaseResult(
                    "domain",
                    "the same seed gives the same bytes",
                    "imagesGenerate",
                    "skipped",
                    note="no model publishes `seed`",
                )
            )

    # -- phase 3: every documented error code ------------------------------------------------------
    def _phase_negative(self) -> None:
        assert self.catalog is not None
        for item in negative_cases(
            self.spec, self.catalog, mock=self.target.mock_controls, operations=self.options.operations
        ):
            if not isinstance(item, NegativeCase):
                op_id, code, status = item
                self._emit(
                    CaseResult("negative", f"{op_id} {status} {code}", op_id, "skipped", note="not provokable live")
                )
                continue
            result = CaseResult("negative", item.name, item.operation_id)
            if item.forced:
                result.note = "forced with Prefer (mock)"
            started = time.perf_counter()
            exclude = (not_a_server_error,) if item.status >= 500 else ()
            if item.code == "invalid_api_key" and self.target.accepts_any_key:
                result.status, result.note = "skipped", ANY_KEY_NOTE
                self._emit(result)
                continue
            response = self.send(item.request, result, "negative", free=True, record=True, exclude=exclude)
            if response is not None:
                body = domain.json_body(response)
                got = domain.identify_code(self.spec.by_id[item.operation_id], response.status_code, body)
                if response.status_code != item.status or got != item.code:
                    result.fail(
                        Finding(
                            "negative_expected_code",
                            f"expected {item.status} {item.code}, got {response.status_code} "
                            f"{got or domain.raw_code(body) or 'no documented code'}",
                            item.operation_id,
                            response.status_code,
                            code=item.code,
                        )
                    )
            result.duration_s = time.perf_counter() - started
            self._emit(result)


def schemathesis_not_set() -> Any:
    from schemathesis.core import NOT_SET

    return NOT_SET
