"""The admin API under ``/_mock/``: described by its own OpenAPI document, run by the same pipeline
pieces as the NanoGPT operations (routing, validation and error tables read from that document)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .controls import FaultProfile, Faults, Journal, QueuedFault, choose_code, key_id
from .errors import MockError, render_error
from .messages import MockRequest, MockResponse, json_response
from .routing import MethodNotAllowed, NoRoute, Router
from .spec import Operation, Spec, load_spec
from .state import Clock, Ledger
from .validation import header_view, parse_body, query_view, schema_error

ADMIN_PREFIX = "/_mock/"
ADMIN_SPEC_PATH = Path(__file__).resolve().parent / "admin-openapi.yaml"
INSPECTOR_PATH = Path(__file__).resolve().parent / "inspector.html"  # the browser page over this API
INSPECTOR_ROUTES = frozenset({ADMIN_PREFIX, ADMIN_PREFIX + "inspector"})


def fault_profile_problems(raw: Any) -> list[str]:
    """Check a fault profile (file, CLI) against the FaultProfile schema of the admin document."""
    spec = load_spec(ADMIN_SPEC_PATH)
    media = spec.by_id["adminFaultsSet"].bodies["application/json"]
    return [f"{'.'.join(map(str, e.instance_path)) or '(top)'}: {e.message}" for e in media.validator.iter_errors(raw)]


class _Settings(Protocol):
    @property
    def admin_token(self) -> str | None: ...
    @property
    def api_keys(self) -> frozenset[str]: ...


class AdminState(Protocol):
    """The narrow view of one mock instance the admin API works on (the engine provides it)."""

    @property
    def config(self) -> _Settings: ...
    @property
    def spec(self) -> Spec: ...
    @property
    def journal(self) -> Journal: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def faults(self) -> Faults: ...
    def reset(self) -> None: ...


class AdminApi:
    def __init__(self, state: AdminState) -> None:
        self.state = state
        self.spec = load_spec(ADMIN_SPEC_PATH)
        self.routing_errors = self.spec.extension_errors("x-routing-errors")
        self.router = Router(self.spec.operations)
        self._document = ADMIN_SPEC_PATH.read_bytes()
        self._handlers: dict[str, Callable[[Operation, MockRequest, dict[str, Any], dict[str, str]], Any]] = {
            "adminReset": self._reset,
            "adminJournalList": self._journal_list,
            "adminJournalClear": self._journal_clear,
            "adminBalanceGet": self._balance_get,
            "adminBalanceSet": self._balance_set,
            "adminConfigGet": self._config_get,
            "adminKeyBalanceGet": self._balance_get,
            "adminKeyBalanceSet": self._balance_set,
            "adminClockGet": self._clock_get,
            "adminClockSet": self._clock_set,
            "adminFaultsGet": self._faults_get,
            "adminFaultsSet": self._faults_set,
            "adminFaultsEnqueue": self._faults_enqueue,
            "adminFaultsClearQueue": self._faults_clear_queue,
        }

    def handle(self, request: MockRequest) -> MockResponse:
        if request.path == ADMIN_PREFIX + "openapi.yaml" and request.method.upper() in ("GET", "HEAD"):
            return MockResponse(200, self._document, media_type="application/yaml")
        if request.path in INSPECTOR_ROUTES and request.method.upper() in ("GET", "HEAD"):
            # static and data-free, so served without the admin token; the page sends it on its API calls
            page = INSPECTOR_PATH.read_bytes()
            return MockResponse(200, page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})
        match = self.router.route(request.method, request.path)
        if isinstance(match, NoRoute):
            return self._error(
                None, MockError("not_found", f"No admin route {request.path}; see {ADMIN_PREFIX}openapi.yaml.")
            )
        if isinstance(match, MethodNotAllowed):
            allowed = ", ".join(match.allowed)
            return self._error(
                None, MockError("method_not_allowed", f"Allowed: {allowed}.", headers={"allow": allowed})
            )
        op = match.operation
        try:
            token = self.state.config.admin_token
            presented = request.headers.get("x-mock-admin-token", "")
            if token and not hmac.compare_digest(presented.encode(), token.encode()):
                raise MockError("invalid_admin_token")
            query = query_view(op, request.query)
            if op.query_validator is not None and (error := schema_error(op.query_validator, query)):
                raise error
            body: dict[str, Any] = {}
            if op.bodies:
                parsed = parse_body(op, request.headers.get("content-type"), request.body)
                media = op.bodies[parsed.media_type]
                if error := schema_error(media.validator, parsed.data):
                    raise error
                body = parsed.data
            params = dict(match.params)
            if op.header_validator is not None:  # the key named by a header (never in a URL): x-mock-key
                if error := schema_error(op.header_validator, header_view(op, request.headers)):
                    raise error
                params["key"] = request.headers["x-mock-key"]
            payload = self._handlers[op.operation_id](op, request, {**query, **body}, params)
        except MockError as error:
            return self._error(op, error)
        return json_response(200, payload, operation_id=op.operation_id)

    def _error(self, op: Operation | None, error: MockError) -> MockResponse:
        """Every admin error from the document's own examples (the operation's, else the routing ones)."""
        template = (
            (op.error(error.code) if op else None)
            or self.routing_errors.get(error.code)
            or self.spec.any_error(error.code)
        )
        if template is None:
            raise AssertionError(f"admin code {error.code} is documented nowhere in {ADMIN_SPEC_PATH.name}")
        return json_response(
            template.status,
            render_error(template, error),
            {k.lower(): v for k, v in error.headers.items()},
            error_code=error.code,
            operation_id=op.operation_id if op else None,
        )

    # -- handlers -----------------------------------------------------------------------------
    def _reset(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        self.state.reset()
        return {"ok": True}

    def _journal_list(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        data = self.state.journal.entries(
            path=args.get("path"),
            operation_id=args.get("operation_id"),
            key=args.get("key"),
            status=args.get("status"),
            limit=args.get("limit", 1000),
        )
        return {"data": data, "count": len(data)}

    def _journal_clear(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        self.state.journal.clear()
        return {"ok": True}

    def _balance_get(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        return {"key_id": key_id(params["key"]), "balance": float(self.state.ledger.balance(params["key"]))}

    def _balance_set(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        balance = self.state.ledger.set_balance(params["key"], str(args["balance"]))
        return {"key_id": key_id(params["key"]), "balance": float(balance)}

    def _config_get(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        """What a client needs to read this mock's answers right (contract runs: which keys can be invalid)."""
        return {"auth_policy": "listed_keys" if self.state.config.api_keys else "any_key"}

    def _clock_view(self) -> dict[str, Any]:
        clock = self.state.clock
        now = clock.now()
        return {
            "now": now,
            "iso": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "frozen": clock.frozen,
            "offset": round(clock.offset, 3),
        }

    def _clock_get(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        return self._clock_view()

    def _clock_set(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        clock = self.state.clock
        saved = clock.save()
        try:  # all or nothing: a value out of the clock's range leaves it where it was
            if args.get("reset"):
                clock.reset()
            if "set" in args:
                clock.set(float(args["set"]), frozen=bool(args.get("frozen", clock.frozen)))
            elif "frozen" in args:
                clock.set(clock.now(), frozen=bool(args["frozen"]))
            if "advance" in args:
                clock.advance(float(args["advance"]))
        except MockError:
            clock.restore(saved)
            raise
        return self._clock_view()

    def _fault_state(self) -> dict[str, Any]:
        return {"profile": self.state.faults.profile.to_dict(), "queue": self.state.faults.queue_view()}

    def _faults_get(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        return self._fault_state()

    def _faults_set(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        self.state.faults.set_profile(FaultProfile.from_dict(args))
        return self._fault_state()

    def _faults_enqueue(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        operations = self.state.spec.operations
        target = args.get("operation_id")
        if target is not None:
            chosen = self.state.spec.by_id.get(target)
            if chosen is None:
                raise MockError(
                    "invalid_parameter_value",
                    f"Unknown operation_id '{target}'. Known: {', '.join(self.state.spec.by_id)}.",
                    "operation_id",
                )
            operations = (chosen,)
        if "code" in args or "status" in args:
            problems: list[str] = []
            for candidate in operations:
                try:
                    choose_code(candidate, args.get("code"), args.get("status"), "queued fault")
                    break
                except MockError as error:
                    problems.append(error.message or "")
            else:
                raise MockError(
                    "invalid_parameter_value",
                    problems[0]
                    if len(operations) == 1
                    else f"No operation documents code={args.get('code')} status={args.get('status')}.",
                    "code",
                )
        self.state.faults.enqueue(QueuedFault.from_dict(args))
        return self._fault_state()

    def _faults_clear_queue(self, op: Operation, req: MockRequest, args: dict[str, Any], params: dict[str, str]) -> Any:
        self.state.faults.clear_queue()
        return self._fault_state()
