"""The mock's core: one request in, one response out, through a short pipeline of values.

    route -> authenticate -> resolve controls -> validate -> handle -> render

Each stage returns a value (``RouteMatch``, the key, ``Directives``, ``Input``, ``Outcome``,
``MockResponse``); the journal is fed from the outcome. No Starlette here: ``Engine.handle`` takes a
``MockRequest`` and can be driven and tested without HTTP. Handlers live in ``handlers/`` by API family.
"""

from __future__ import annotations

import logging
import time

import orjson

from .admin import ADMIN_PREFIX, AdminApi
from .auth import accountless_x402, authenticate
from .call import Call, Services
from .catalog import Catalog, load_catalog
from .config import MockConfig
from .controls import NO_DIRECTIVES, Directives, Faults, Journal, key_id, resolve_directives, seconds_to_midnight
from .errors import ErrorTemplate, MockError, MockServerError, SpecError, render_error
from .files import FILE_OPERATION, Files
from .handlers import HANDLERS
from .inputs import Inputs
from .messages import MockRequest, MockResponse, Outcome, plain_error
from .payments import Payments, x402_matrix
from .render import Renderer
from .routing import NoRoute, RouteMatch, Router
from .signing import FILES_PREFIX, UrlSigner
from .spec import Operation, Spec, load_spec
from .state import Clock, Ledger
from .validation import Input, model_named_in, validate

__all__ = ["Engine", "MockConfig", "NonConformingResponse"]

log = logging.getLogger("mockserver")


class NonConformingResponse(MockServerError, AssertionError):
    """An answer broke the spec (raised only with ``MockConfig.check_responses``: the tests' guard)."""


class Engine:
    """One mock instance: spec, catalog, renderer and explicit state, behind ``handle``."""

    def __init__(
        self, config: MockConfig | None = None, *, spec: Spec | None = None, catalog: Catalog | None = None
    ) -> None:
        self.config = config = config or MockConfig()
        self.spec = spec or load_spec(config.spec_path)
        self.catalog = catalog or load_catalog(config.catalog_path)
        self.router = Router(self.spec.operations)
        self.clock = Clock()
        self.ledger = Ledger(config.balance)
        self.faults = Faults(config.fault_profile)
        self.journal = Journal()
        self.renderer = Renderer(cache_bytes=config.render_cache_bytes)
        self.admin = AdminApi(self)
        signer = UrlSigner(config.signing_secret)
        self.files = Files(
            signer,
            self.clock,
            self.renderer,
            store_bytes=config.render_cache_bytes,
            url_ttl=config.url_ttl,
            public_base_url=config.public_base_url,
        )
        routes = self.catalog.routes
        image_bytes = config.max_image_bytes or routes.data_url_max_bytes
        inputs = Inputs(
            routes.input_images,
            image_bytes,
            self.renderer,
            self.files.own,
            max_input_pixels=config.max_input_pixels,
            max_request_pixels=config.max_request_pixels,
        )
        self.payments = Payments(self.clock, self.catalog.x402, x402_matrix(self.spec.document))
        self.payments.replay = self.handle  # completing a paid quote replays the stored request
        self.services = Services(
            config, self.catalog, self.renderer, self.files, inputs, self.clock, self.ledger, self.faults, self.payments
        )
        self._file_operation = self.admin.spec.by_id[FILE_OPERATION]
        self._routing_errors = self.admin.routing_errors
        missing = [op.operation_id for op in self.spec.operations if op.operation_id not in HANDLERS]
        if missing:
            raise SpecError(f"the spec has operations the mock cannot answer: {missing}")

    def accepts_key(self, key: str) -> bool:
        return bool(key) and (not self.config.api_keys or key in self.config.api_keys)

    def reset(self) -> None:
        """Back to the state of a fresh instance (balances, clock, faults, journal, files, caches)."""
        self.ledger.reset()
        self.clock.reset()
        self.faults.reset()
        self.journal.clear()
        self.files.clear()
        self.renderer.clear()
        self.payments.clear()

    # -- the pipeline -------------------------------------------------------------------------
    def handle(self, request: MockRequest) -> MockResponse:
        if request.path.startswith(ADMIN_PREFIX) and not request.path.startswith(FILES_PREFIX):
            return self.admin.handle(request)
        started = time.perf_counter()
        operation, key, directives = None, None, NO_DIRECTIVES
        try:
            if request.path.startswith(FILES_PREFIX):
                operation = self._file_operation
                outcome = self._serve_file(request)
            else:
                match = self.route(request)
                operation = match.operation
                key = self.authenticate(operation, request)
                directives = self.controls(operation, request, key)
                if directives.code is not None:
                    raise self._forced(operation, directives.code)
                inp = self.validate(operation, request)
                call = Call(request, operation, match.params, key, directives, inp, self.services)
                outcome = HANDLERS[operation.operation_id].run(call)
        except MockError as error:
            outcome = Outcome(0, error=error)
        response = self.render(operation, outcome, directives, request)
        self.journal.record(
            self.clock.now(),
            request.method.upper(),
            request.path,
            "&".join(f"{k}={v}" for k, v in request.query),
            response.operation_id,
            key_id(key),
            outcome.model or (model_named_in(request.body) if operation and operation.bodies else None),
            response.status,
            response.error_code,
            None if outcome.charge is None else outcome.charge.cost,
            directives.source,
            response.delay_ms,
            (time.perf_counter() - started) * 1000,
            outcome.images,
        )
        return response

    def route(self, request: MockRequest) -> RouteMatch:
        match = self.router.route(request.method, request.path)
        if isinstance(match, RouteMatch):
            return match
        if isinstance(match, NoRoute):
            raise MockError("not_found", f"No route for {request.method} {request.path}.")
        allowed = ", ".join(match.allowed)
        raise MockError(
            "method_not_allowed",
            f"Method {request.method} is not allowed on {request.path}. Allowed: {allowed}.",
            headers={"allow": allowed},
        )

    def authenticate(self, operation: Operation, request: MockRequest) -> str | None:
        x402 = operation.x402_anonymous and accountless_x402(request.headers)
        return authenticate(operation, request.headers, self.accepts_key, allow_anonymous=x402)

    def controls(self, operation: Operation, request: MockRequest, key: str | None) -> Directives:
        return resolve_directives(
            self.faults,
            operation,
            request.path,
            request.headers.get("prefer"),
            key,
            self.clock.now(),
            presign_failure=self.config.presign_failure,
        )

    def validate(self, operation: Operation, request: MockRequest) -> Input:
        handler = HANDLERS[operation.operation_id]
        return validate(
            operation,
            request.method,
            request.headers,
            request.query,
            request.body,
            precheck=handler.precheck,
            code_for_param=handler.code_for_param,
        )

    def render(
        self, operation: Operation | None, outcome: Outcome, directives: Directives, request: MockRequest
    ) -> MockResponse:
        """The outcome as bytes on the wire, with the latency the controls ask for."""
        try:
            if outcome.error is not None:
                response = self.error_response(operation, outcome.error)
            else:
                body = outcome.raw if outcome.raw is not None else orjson.dumps(outcome.payload)
                response = MockResponse(outcome.status, body, outcome.media_type, dict(outcome.headers))
                response.charge = outcome.charge
            if operation is not None and operation is not self._file_operation:
                response.operation_id = operation.operation_id
            if directives.latency_ms is not None:
                response.delay_ms = directives.latency_ms
            elif outcome.model is not None and outcome.error is None:
                response.delay_ms = self.faults.latency_ms(outcome.model, outcome.megapixels)
            if request.method.upper() == "HEAD":
                response.body = b""
            if self.config.check_responses:
                self._check(request, response)
        except BaseException:
            if outcome.charge is not None:
                outcome.charge.refund()
            raise
        return response

    def reject(self, method: str, path: str, error: MockError) -> MockResponse:
        """Answer ``error`` for a request the outer layer refused before it reached ``handle``."""
        match = self.router.route(method, path) if not path.startswith(ADMIN_PREFIX) else NoRoute()
        operation = match.operation if isinstance(match, RouteMatch) else None
        request = MockRequest(method, path)
        response = self.render(operation, Outcome(0, error=error), NO_DIRECTIVES, request)
        self.journal.record(
            self.clock.now(), method.upper(), path, "", response.operation_id, None, None,
            response.status, response.error_code, None, None, 0.0, 0.0, (),
        )  # fmt: skip
        return response

    def error_response(self, operation: Operation | None, error: MockError) -> MockResponse:
        """Render ``error`` in the envelope and status the spec documents for it on ``operation``."""
        template = (operation.error(error.code) if operation else None) or self._routing_errors.get(error.code)
        if template is None:
            log.warning("code %s is not documented for %s", error.code, operation.operation_id if operation else "-")
            template = self.spec.any_error(error.code) or ErrorTemplate(
                error.code, 500, plain_error(error.code, "api_error", error.code), "param"
            )
        headers = {k.lower(): v for k, v in error.headers.items()}
        if "retry-after" in template.headers and "retry-after" not in headers:
            headers["retry-after"] = "1"
        return MockResponse(
            template.status, orjson.dumps(render_error(template, error)), headers=headers, error_code=error.code
        )

    # -- helpers ------------------------------------------------------------------------------
    def _serve_file(self, request: MockRequest) -> Outcome:
        if request.method.upper() not in ("GET", "HEAD"):
            raise MockError("method_not_allowed", "Signed image URLs only answer GET.", headers={"allow": "GET, HEAD"})
        return self.files.serve(request)

    def _forced(self, operation: Operation, code: str) -> MockError:
        """A documented error chosen by a control: the example's own message and parameter."""
        template = operation.errors[code]
        inner = template.body.get("error")
        param = inner.get(template.param_key) if isinstance(inner, dict) and template.param_key else None
        headers = {}
        if "retry-after" in template.headers:
            wait = seconds_to_midnight(self.clock.now()) if code.startswith("daily_") else 1
            headers["retry-after"] = str(wait)
        return MockError(code, None, param, headers=headers)

    def _check(self, request: MockRequest, response: MockResponse) -> None:
        if response.operation_id is None:
            return
        body = orjson.loads(response.body) if response.media_type == "application/json" and response.body else None
        spec = self.admin.spec if request.path.startswith(ADMIN_PREFIX) else self.spec
        problems = spec.response_problems(response.operation_id, response.status, response.media_type, body)
        if problems:
            raise NonConformingResponse(f"{request.method} {request.path} -> {response.status}: {problems}")
