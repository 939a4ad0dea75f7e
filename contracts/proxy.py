"""``nanogpt-mock proxy --upstream URL``: a transparent reverse proxy that checks real traffic.

An application points at the proxy instead of NanoGPT. Every request is forwarded unchanged (bodies
streamed both ways, credentials passed through, no header added: no User-Agent, no Accept-Encoding,
no cookie jar, no environment proxies), and the proxy never sends a request of its own. After each
answer has been passed on, the exchange is held to the spec and the domain checks of
``contracts.checks`` (statuses, content types, headers and schemas as documented; error codes and
envelopes; images decode with the asked format, size and count; ``remainingBalance`` drops by
``cost``). Image URLs are not downloaded (that would be a request of the proxy's own); the model
catalog is learnt from the catalog answers that pass through.

Layering: this module lives in ``contracts`` (it needs the domain checks); ``nanogpt-mock proxy``
reaches it through the ``nanogpt_mock.commands`` entry point, so ``mockserver`` imports nothing from
``contracts``. The recording format and the replay server are ``mockserver.replay``.

Exit codes: 0 no violation seen, 1 violations, 2 usage (bad flag, port in use, unreadable spec).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import requests
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response as SchemathesisResponse

from mockserver.replay import RECORDING_FORMAT, match_key, storable_headers, stored_body
from mockserver.routing import RouteMatch, Router
from mockserver.spec import SpecError, load_spec
from mockserver.validation import parse_multipart

from . import checks as domain
from .catalog import TargetCatalog, catalog_from_bodies
from .model import CaseResult, Finding, RunResult
from .runner import SAFE_CHECKS, failure_findings, schemathesis_not_set, schemathesis_schema

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2
# connection-level headers (RFC 9110 section 7.6.1): they describe one hop, never the exchange
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
MAX_CHECKED_BYTES = 64 * 1024 * 1024  # larger bodies are forwarded in full but not checked
REDACTED = "[REDACTED]"
IMAGE_MODES = ("keep", "hash")


class _Reject(Exception):
    """Stop forwarding: the client went away."""


@dataclass
class Exchange:
    """One request and its answer as they passed through (bodies decoded, credentials still inside)."""

    seq: int
    method: str
    path: str
    query: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes | None = None  # None: too large or in an encoding we do not decode
    operation_id: str | None = None

    def header(self, name: str, which: str = "request") -> str | None:
        pairs = self.request_headers if which == "request" else self.response_headers
        return next((v for k, v in pairs if k.lower() == name), None)

    @property
    def secrets(self) -> list[str]:
        """The credentials this exchange carried: scrubbed from everything written about it."""
        out: list[str] = []
        for name, value in self.request_headers:
            lowered = name.lower()
            if lowered == "authorization":
                value = value.partition(" ")[2] if " " in value else value
            if lowered in ("authorization", "x-api-key", "cookie", "x-mock-admin-token") and len(value.strip()) >= 4:
                out.append(value.strip())
        return out

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def decoded(raw: bytes, encoding: str | None) -> bytes | None:
    """A response body as the application reads it; None for an encoding the proxy does not decode."""
    value = (encoding or "identity").strip().lower()
    try:
        if value == "identity":
            return raw
        if value in ("gzip", "x-gzip"):
            return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        if value == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -zlib.MAX_WBITS)
    except zlib.error:
        return None
    return None


class ExchangeChecker:
    """The spec and the domain checks applied to exchanges seen on the wire (never a request of its own)."""

    def __init__(self, spec_path: Path | None = None) -> None:
        self.spec = load_spec(spec_path)
        self.router = Router(self.spec.operations)
        self.schema = schemathesis_schema(self.spec)
        self.env = domain.CheckEnvironment(self.spec, client=None, fetch_urls=False)
        self._catalog: dict[str, Any] = {"models": None, "endpoints": {}, "legacy": None}
        self.lock = threading.Lock()

    def operation_id(self, method: str, path: str) -> str | None:
        match = self.router.route(method, path)
        return match.operation.operation_id if isinstance(match, RouteMatch) else None

    def check(self, exchange: Exchange) -> list[Finding]:
        """Findings about one exchange (redacted); none for paths the spec does not describe."""
        match = self.router.route(exchange.method, exchange.path)
        if not isinstance(match, RouteMatch) or exchange.response_body is None:
            return []
        op_id = match.operation.operation_id
        with self.lock:  # the checks share state (balances per caller, seeds, the catalog)
            self._learn_catalog(op_id, match.params, exchange)
            case = self._case(op_id, dict(match.params), exchange)
            response = self._response(exchange)
            findings: list[Finding] = []
            with domain.use_environment(self.env):
                try:
                    case.validate_response(response, checks=[*SAFE_CHECKS, *domain.DOMAIN_CHECKS])
                except FailureGroup as group:
                    findings += failure_findings(group, op_id, exchange.status)
                findings += self.env.take_findings()
        out: list[Finding] = []
        for f in findings:
            redacted = Finding(
                f.check, exchange.redact(f.message), f.operation_id, f.status, f.path, f.code, f.model, f.kind
            )
            if redacted not in out:
                out.append(redacted)
        return out

    def _case(self, op_id: str, params: dict[str, str], exchange: Exchange) -> Any:
        operation = self.schema.find_operation_by_id(op_id)
        headers = {k.lower(): v for k, v in exchange.request_headers if k.lower() not in HOP_BY_HOP}
        query = dict(_query_pairs(exchange.query))
        content_type = headers.get("content-type")
        body: Any = schemathesis_not_set()
        media = None
        raw = exchange.request_body
        if raw and content_type:
            media = content_type.split(";")[0].strip().lower()
            body = _request_fields(media, content_type, raw)
        return operation.Case(
            path_parameters=params or None,
            headers=headers,
            query=query or None,
            body=body,
            media_type=media,
        )

    def _response(self, exchange: Exchange) -> SchemathesisResponse:
        url = "http://upstream" + exchange.path + (f"?{exchange.query}" if exchange.query else "")
        prepared = requests.Request(
            method=exchange.method, url=url, headers=dict(exchange.request_headers), data=exchange.request_body or None
        ).prepare()
        unsent = {"content-encoding", "content-length", "transfer-encoding"}  # the body here is decoded
        headers: dict[str, list[str]] = {}
        for name, value in exchange.response_headers:
            if name.lower() not in unsent:
                headers.setdefault(name.lower(), []).append(value)
        return SchemathesisResponse(
            status_code=exchange.status,
            headers=headers,
            content=exchange.response_body or b"",
            request=prepared,
            elapsed=0.0,
            verify=True,
        )

    def _learn_catalog(self, op_id: str, params: Any, exchange: Exchange) -> None:
        if exchange.status != 200:
            return
        try:
            body = json.loads(exchange.response_body or b"")
        except ValueError:
            return
        if op_id == "imagesListModels":
            self._catalog["models"] = body
        elif op_id == "imagesListModelEndpoints" and "modelId" in params:
            self._catalog["endpoints"][params["modelId"]] = body
        elif op_id == "legacyListImageModels" and "detailed=true" in exchange.query:
            self._catalog["legacy"] = body
        else:
            return
        self.env.catalog = self.catalog

    @property
    def catalog(self) -> TargetCatalog | None:
        """What the application's own catalog reads have shown of the upstream's catalog."""
        if not isinstance(self._catalog["models"], dict):
            return None
        return catalog_from_bodies(self._catalog["models"], self._catalog["endpoints"], self._catalog["legacy"])


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _request_fields(media: str, content_type: str, raw: bytes) -> Any:
    """The request body as the checks read it: the JSON object, or the form with file bytes."""
    if media == "multipart/form-data":
        try:
            fields, files = parse_multipart(content_type, raw)
        except Exception:  # a malformed form: the checks see no fields, the answer is still checked
            return {}
        out: dict[str, Any] = dict(fields)
        for name, parts in files.items():
            out[name] = parts[0].data if len(parts) == 1 and not name.endswith("[]") else [p.data for p in parts]
        return out
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw


class Recorder:
    """Writes each exchange as one redacted JSON file (``mockserver.replay`` format) into a directory.

    Credentials never reach the file: secret headers are dropped and every credential value the
    exchange carried is scrubbed from the text. ``images="hash"`` replaces image bytes (``b64_json``,
    data URLs, uploaded files) by their SHA-256, for evidence without payloads; ``keep`` stores them
    so that ``nanogpt-mock --replay`` serves identical bytes.
    """

    def __init__(self, directory: Path, images: str = "keep") -> None:
        if images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {IMAGE_MODES}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.images = directory, images
        self._lock = threading.Lock()

    def write(self, exchange: Exchange) -> Path | None:
        if exchange.response_body is None:
            return None
        content_type = exchange.header("content-type")
        entry = {
            "format": RECORDING_FORMAT,
            "match": match_key(exchange.method, exchange.path, exchange.query, content_type, exchange.request_body),
            "operation_id": exchange.operation_id,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "images": self.images,
            "request": {
                "method": exchange.method,
                "path": exchange.path,
                "query": exchange.query,
                "headers": storable_headers(exchange.request_headers),
                "body": self._body(exchange.request_body, content_type),
            },
            "response": {
                "status": exchange.status,
                "headers": storable_headers(exchange.response_headers),
                "body": self._body(exchange.response_body, exchange.header("content-type", "response")),
            },
        }
        text = exchange.redact(json.dumps(entry, indent=1))
        name = f"{exchange.seq:06d}-{exchange.operation_id or exchange.method.lower()}.json"
        with self._lock:
            path = self.directory / name
            path.write_text(text + "\n")
        return path

    def _body(self, raw: bytes, content_type: str | None) -> dict[str, Any]:
        if self.images == "keep" or not raw:
            return stored_body(raw)
        media = (content_type or "").split(";")[0].strip().lower()
        if media == "application/json":
            try:
                return {"text": json.dumps(_hash_images(json.loads(raw)))}
            except ValueError:
                pass
        if media.startswith(("image/", "multipart/")) or not _is_text(raw):
            return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": str(len(raw))}
        return stored_body(raw)


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _hash_images(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _hash_images(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_images(v, key) for v in value]
    if isinstance(value, str) and (key == "b64_json" or value.startswith("data:")):
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            digest = hashlib.sha256(base64.b64decode(data)).hexdigest()
        except ValueError:
            digest = hashlib.sha256(value.encode()).hexdigest()
        return f"sha256:{digest}"
    return value


class ProxyApp:
    """The ASGI app of the proxy: forward, pass the answer on, then check (and record) the exchange."""

    def __init__(
        self,
        upstream: str,
        *,
        checker: ExchangeChecker | None = None,
        recorder: Recorder | None = None,
        on_violation: Callable[[Exchange, Finding], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.checker = checker or ExchangeChecker()
        self.recorder = recorder
        self.on_violation = on_violation
        self.violations: list[tuple[Exchange, Finding]] = []
        self.per_operation: Counter[str] = Counter()
        self.exchanges = 0
        self.upstream_errors = 0
        self._transport, self._timeout = transport, timeout_s
        self._client: httpx.AsyncClient | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._seq = 0

    def _new_client(self) -> httpx.AsyncClient:
        from http.cookiejar import CookieJar, DefaultCookiePolicy

        client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout, connect=30.0),
            follow_redirects=False,
            trust_env=False,  # no environment proxy, no .netrc credentials
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # never store or send cookies
        )
        client.headers.clear()  # no User-Agent, Accept, Accept-Encoding of our own
        return client

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._client is None:
            self._client = self._new_client()
            self._limiter = anyio.CapacityLimiter(1)
        with self._idle:
            self._pending += 1
            self._seq += 1
            seq = self._seq
        try:
            exchange = await self._forward(seq, scope, receive, send)
            if exchange is not None:
                assert self._limiter is not None
                await anyio.to_thread.run_sync(self._after, exchange, limiter=self._limiter)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, seq: int, scope: Any, receive: Any, send: Any) -> Exchange | None:
        assert self._client is not None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope.get("query_string", b"").decode("latin-1")
        exchange = Exchange(seq, scope["method"], scope["path"], query, headers, b"")
        exchange.operation_id = self.checker.operation_id(exchange.method, exchange.path)
        copy: list[bytes] = []
        kept = [0]

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Reject
                chunk = message.get("body", b"")
                if chunk:
                    kept[0] += len(chunk)
                    if kept[0] <= MAX_CHECKED_BYTES:
                        copy.append(chunk)
                    yield chunk
                if not message.get("more_body", False):
                    return

        has_body = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
        forward = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + raw_path.decode("latin-1") + (f"?{query}" if query else "")
        request = self._client.build_request(
            exchange.method, url, headers=forward, content=body() if has_body else None
        )
        try:
            response = await self._client.send(request, stream=True)
        except _Reject:
            return None
        except httpx.HTTPError as exc:
            self.upstream_errors += 1
            print(
                f"nanogpt-mock proxy: upstream failed for {exchange.method} {exchange.path}: {type(exc).__name__}",
                file=sys.stderr,
                flush=True,
            )
            raw = json.dumps(
                {"error": {"message": "proxy: the upstream did not answer", "type": "proxy_error", "code": None}}
            ).encode()
            start = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
            await send({"type": "http.response.start", "status": 502, "headers": start})
            await send({"type": "http.response.body", "body": raw})
            return None
        exchange.request_body = b"".join(copy) if kept[0] <= MAX_CHECKED_BYTES else b""
        answer: list[bytes] = []
        size = 0
        try:
            out_headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
            exchange.status, exchange.response_headers = response.status_code, out_headers
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
                }
            )
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size <= MAX_CHECKED_BYTES:
                    answer.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
        if size <= MAX_CHECKED_BYTES:
            exchange.response_body = decoded(b"".join(answer), response.headers.get("content-encoding"))
        return exchange

    def _after(self, exchange: Exchange) -> None:
        """Check, report and record one exchange (in a worker thread, one at a time)."""
        try:
            findings = self.checker.check(exchange)
        except Exception as exc:  # a bug in a check must not take the proxy down; the answer was already sent
            print(
                f"nanogpt-mock proxy: could not check exchange #{exchange.seq}: {type(exc).__name__}", file=sys.stderr
            )
            findings = []
        with self._idle:
            self.exchanges += 1
            self.per_operation[exchange.operation_id or "(not in the spec)"] += 1
            for finding in findings:
                self.violations.append((exchange, finding))
        for finding in findings:
            if self.on_violation is not None:
                self.on_violation(exchange, finding)
        if self.recorder is not None:
            self.recorder.write(exchange)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every exchange seen so far has been checked (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # -- reports ---------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """The ``--report-json`` document: a top-level ``violations`` list, each with operationId and check."""
        with self._idle:
            violations = list(self.violations)
            per_operation = dict(self.per_operation)
        return {
            "format": "nanogpt-proxy-report/1",
            "upstream": self.upstream,
            "ok": not violations,
            "exchanges": self.exchanges,
            "per_operation": per_operation,
            "upstream_errors": self.upstream_errors,
            "violations": [
                {
                    "operationId": f.operation_id,
                    "check": f.check,
                    "message": f.message,
                    "status": f.status,
                    "method": e.method,
                    "path": e.path,
                    "json_path": f.path,
                    "code": f.code,
                    "model": f.model,
                    "exchange": e.seq,
                    "key": f.key,
                }
                for e, f in violations
            ],
        }

    def run_result(self) -> RunResult:
        """The exchanges as a contract result (one case per operation), for the JUnit and Markdown views."""
        result = RunResult({"kind": "proxy", "base_url": self.upstream, "mock": False})
        with self._idle:
            for op_id, count in sorted(self.per_operation.items()):
                case = CaseResult("proxy", f"{op_id} traffic", op_id, requests=count)
                for exchange, finding in self.violations:
                    if (exchange.operation_id or "(not in the spec)") == op_id:
                        case.fail(finding)
                result.cases.append(case)
            result.requests = self.exchanges
        return result


def violation_line(exchange: Exchange, finding: Finding) -> str:
    where = f"{exchange.method} {exchange.path} -> {exchange.status}"
    extra = f" {finding.path}" if finding.path else ""
    return f"VIOLATION #{exchange.seq} {where} [{finding.operation_id}] {finding.check}{extra}: {finding.message}"


def printer(stream: IO[str] | None = None) -> Callable[[Exchange, Finding], None]:
    def show(exchange: Exchange, finding: Finding) -> None:
        out = stream or sys.stdout
        out.write(violation_line(exchange, finding).replace("\n", " ")[:2000] + "\n")
        out.flush()

    return show


# -- the command -------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """One line and exit 2, never the usage block (it is in ``--help``)."""
        print(f"nanogpt-mock proxy: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nanogpt-mock proxy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True, help="base URL to forward to, e.g. https://nano-gpt.com")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8788, help="port to listen on; 0 picks one (default 8788)")
    parser.add_argument("--spec", type=Path, help="OpenAPI document to hold the traffic to (default: the bundled one)")
    parser.add_argument("--report-json", type=Path, metavar="FILE", help="write the violations here (JSON)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here (one case per operation)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary here")
    parser.add_argument("--record", type=Path, metavar="DIR", help="store every exchange, redacted, in DIR")
    parser.add_argument(
        "--record-images",
        choices=IMAGE_MODES,
        default="keep",
        help="keep image bytes in recordings (replayable, default) or store their SHA-256 only",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the upstream (default 600)")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    return parser


def _usage(message: str) -> int:
    print(f"nanogpt-mock proxy: {message}", file=sys.stderr)
    return EXIT_USAGE


def write_reports(app: ProxyApp, args: argparse.Namespace) -> None:
    from .report import to_junit, to_markdown

    if args.report_json:
        args.report_json.write_text(json.dumps(app.report(), indent=2) + "\n")
    if args.junit:
        args.junit.write_text(to_junit(app.run_result()))
    if args.markdown:
        args.markdown.write_text(to_markdown(app.run_result(), "NanoGPT traffic checked by the proxy"))


def main(argv: Sequence[str] | None = None) -> int:
    """``nanogpt-mock proxy``: serve until interrupted, then write the reports."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line usage error
        return EXIT_USAGE if exc.code else EXIT_OK
    parts = urlsplit(args.upstream)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _usage(f"--upstream {args.upstream!r} is not an http(s) base URL")
    try:
        checker = ExchangeChecker(args.spec)
    except (OSError, SpecError) as exc:
        return _usage(f"cannot load the spec: {exc}")
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        return _usage(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    recorder = Recorder(args.record, args.record_images) if args.record else None
    app = ProxyApp(args.upstream, checker=checker, recorder=recorder, on_violation=printer(), timeout_s=args.timeout)
    import uvicorn

    port = sock.getsockname()[1]
    print(
        f"nanogpt-mock proxy: http://{args.host}:{port} -> {args.upstream.rstrip('/')} "
        f"(checking every exchange{'; recording to ' + str(args.record) if args.record else ''})",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    app.wait_idle()
    write_reports(app, args)
    print(
        f"{'OK' if not app.violations else 'VIOLATIONS'}: {app.exchanges} exchanges checked, "
        f"{len(app.violations)} violations",
        flush=True,
    )
    return EXIT_OK if not app.violations else EXIT_VIOLATIONS
