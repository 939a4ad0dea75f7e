"""``nanogpt-mock``: serve the mock on uvicorn. Every flag has a matching environment variable."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from . import replay
from .admin import fault_profile_problems
from .config import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_REQUEST_PIXELS, DEFAULT_WORKER_THREADS
from .controls import FaultProfile
from .spec import load_yaml

ENV_PREFIX = "NANOGPT_MOCK_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must not be negative")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be a positive number of seconds")
    return value


def _float_env(name: str) -> float | None:
    raw = _env(name)
    return None if raw in (None, "") else float(raw)


def load_fault_profile(path: Path | None, args: argparse.Namespace) -> FaultProfile | None:
    """The profile file, schema-checked, with the limit flags laid over it."""
    raw: dict[str, Any] = {}
    if path is not None:
        loaded = load_yaml(path)
        if not isinstance(loaded, dict):
            raise SystemExit(f"nanogpt-mock: {path}: a fault profile is a mapping")
        raw = loaded
    for name in ("rate_limit_rps", "daily_request_limit", "daily_usd_limit"):
        value = getattr(args, name)
        if value is not None:
            raw[name] = int(value) if name == "daily_request_limit" else float(value)
    if not raw:
        return None
    problems = fault_profile_problems(raw)
    if problems:
        raise SystemExit(f"nanogpt-mock: fault profile {path or '(flags)'} is invalid: " + "; ".join(problems))
    return FaultProfile.from_dict(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanogpt-mock",
        description="Serve a faithful, offline fake of the NanoGPT image API, driven by its OpenAPI spec. "
        f"Every option can also be set through the environment variable shown (prefix {ENV_PREFIX}).",
    )
    parser.add_argument(
        "--host",
        default=_env("HOST", DEFAULT_HOST),
        help=f"interface to listen on [env {ENV_PREFIX}HOST, default {DEFAULT_HOST}]",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
        help=f"TCP port; 0 picks a free one [env {ENV_PREFIX}PORT, default {DEFAULT_PORT}]",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this API key (repeatable). Default: any non-empty key is accepted "
        f"[env {ENV_PREFIX}API_KEYS, comma-separated]",
    )
    parser.add_argument(
        "--balance",
        type=_decimal,
        default=_decimal(_env("BALANCE", "1000") or "1000"),
        help=f"starting USD balance of every key [env {ENV_PREFIX}BALANCE, default 1000]",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=_env("CATALOG"),
        help="model catalog YAML replacing the built-in one (same format as "
        f"mockserver/catalog.yaml) [env {ENV_PREFIX}CATALOG]",
    )
    parser.add_argument(
        "--url-ttl",
        type=_positive_int,
        default=int(_env("URL_TTL", "3600") or 3600),
        help="lifetime in seconds of the signed image URLs returned for response_format=url "
        f"[env {ENV_PREFIX}URL_TTL, default 3600]",
    )
    parser.add_argument(
        "--signing-secret",
        default=_env("SIGNING_SECRET"),
        help="HMAC secret of image URLs; processes sharing it serve each other's URLs "
        f"[env {ENV_PREFIX}SIGNING_SECRET, default: a fixed development secret]",
    )
    parser.add_argument(
        "--presign-failure",
        action="store_true",
        default=(_env("PRESIGN_FAILURE", "") or "").lower() in ("1", "true", "yes"),
        help="emulate NanoGPT's documented upload/presign failure: answer b64_json even when "
        f"response_format=url was asked [env {ENV_PREFIX}PRESIGN_FAILURE]",
    )
    parser.add_argument(
        "--public-base-url",
        default=_env("PUBLIC_BASE_URL"),
        help="scheme://host[:port] put into image URLs, when clients reach the mock through a "
        f"proxy [env {ENV_PREFIX}PUBLIC_BASE_URL, default: the request's Host]",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=int(_env("MAX_BODY_BYTES", str(48 * 1024 * 1024)) or 0),
        help="largest request body accepted; larger ones get 413 image_input_too_large while "
        f"streaming [env {ENV_PREFIX}MAX_BODY_BYTES, default 50331648]",
    )
    parser.add_argument(
        "--max-input-pixels",
        type=_positive_int,
        default=int(_env("MAX_INPUT_PIXELS", str(DEFAULT_MAX_INPUT_PIXELS)) or 0),
        help="largest input image, in pixels its header declares; larger ones get 413 image_input_too_large "
        f"before any decoding [env {ENV_PREFIX}MAX_INPUT_PIXELS, default {DEFAULT_MAX_INPUT_PIXELS} = 4096x4096]",
    )
    parser.add_argument(
        "--max-request-pixels",
        type=_positive_int,
        default=int(_env("MAX_REQUEST_PIXELS", str(DEFAULT_MAX_REQUEST_PIXELS)) or 0),
        help="all input images (and masks) of one request together, in declared pixels; 413 beyond "
        f"[env {ENV_PREFIX}MAX_REQUEST_PIXELS, default {DEFAULT_MAX_REQUEST_PIXELS}]",
    )
    parser.add_argument(
        "--worker-threads",
        type=_positive_int,
        default=int(_env("WORKER_THREADS", str(DEFAULT_WORKER_THREADS)) or 0),
        help="threads decoding, rendering and encoding images off the event loop, at most this many at once "
        f"[env {ENV_PREFIX}WORKER_THREADS, default {DEFAULT_WORKER_THREADS}]",
    )
    parser.add_argument(
        "--header-timeout",
        type=_positive_float,
        default=_positive_float(_env("HEADER_TIMEOUT", "10") or "10"),
        help="seconds a client has to send its request line and headers; the connection is closed after "
        f"[env {ENV_PREFIX}HEADER_TIMEOUT, default 10]",
    )
    parser.add_argument(
        "--body-timeout",
        type=_positive_float,
        default=_positive_float(_env("BODY_TIMEOUT", "30") or "30"),
        help="seconds a client has to send its whole request body; 408 request_timeout and close after "
        f"[env {ENV_PREFIX}BODY_TIMEOUT, default 30]",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=_positive_int,
        default=int(_env("KEEP_ALIVE_TIMEOUT", "5") or 0),
        help=f"seconds an idle keep-alive connection stays open [env {ENV_PREFIX}KEEP_ALIVE_TIMEOUT, default 5]",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=_positive_int,
        default=int(_env("MAX_HEADER_BYTES", "65536") or 0),
        help="largest request line plus headers; 431 request_header_fields_too_large and close beyond "
        f"[env {ENV_PREFIX}MAX_HEADER_BYTES, default 65536]",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive_int,
        default=int(_env("MAX_CONNECTIONS", "512") or 0),
        help=f"connections (and requests in flight) at once; 503 beyond [env {ENV_PREFIX}MAX_CONNECTIONS, default 512]",
    )
    parser.add_argument(
        "--fault-profile",
        type=Path,
        default=_env("FAULT_PROFILE"),
        help="YAML/JSON fault profile (latency per model, error rate, rate and daily limits, "
        "presign failure rate, seed; schema FaultProfile in mockserver/admin-openapi.yaml) "
        f"[env {ENV_PREFIX}FAULT_PROFILE]",
    )
    parser.add_argument(
        "--rate-limit-rps",
        type=float,
        default=_float_env("RATE_LIMIT_RPS"),
        help="per-key requests per second before 429 rate_limit_exceeded; NanoGPT documents 25 "
        f"[env {ENV_PREFIX}RATE_LIMIT_RPS, default off]",
    )
    parser.add_argument(
        "--daily-request-limit",
        type=int,
        default=_float_env("DAILY_REQUEST_LIMIT"),
        help="per-key requests per UTC day before 429 daily_rpd_limit_exceeded "
        f"[env {ENV_PREFIX}DAILY_REQUEST_LIMIT, default off]",
    )
    parser.add_argument(
        "--daily-usd-limit",
        type=_decimal,
        default=_env("DAILY_USD_LIMIT"),
        help="per-key USD per UTC day before 429 daily_usd_limit_exceeded "
        f"[env {ENV_PREFIX}DAILY_USD_LIMIT, default off]",
    )
    parser.add_argument(
        "--admin-token",
        default=_env("ADMIN_TOKEN"),
        help="require this token in the x-mock-admin-token header of /_mock/ admin calls "
        f"[env {ENV_PREFIX}ADMIN_TOKEN, default: admin API open]",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help=f"uvicorn and mock log level [env {ENV_PREFIX}LOG_LEVEL, default info]",
    )
    replay.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and (command := _command(argv[0])) is not None:  # e.g. `nanogpt-mock proxy`
        return int(command(argv[1:]))
    args = build_parser().parse_args(argv)
    import uvicorn

    from .app import create_app
    from .config import MockConfig
    from .serving import install_log_redaction, server_limits

    keys = args.api_keys or [k for k in (_env("API_KEYS", "") or "").split(",") if k.strip()]
    overrides = {} if args.signing_secret is None else {"signing_secret": args.signing_secret}
    config = MockConfig(
        api_keys=frozenset(k.strip() for k in keys),
        balance=args.balance,
        catalog_path=args.catalog,
        url_ttl=args.url_ttl,
        presign_failure=args.presign_failure,
        public_base_url=args.public_base_url,
        max_body_bytes=args.max_body_bytes,
        max_input_pixels=args.max_input_pixels,
        max_request_pixels=args.max_request_pixels,
        worker_threads=args.worker_threads,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_header_bytes=args.max_header_bytes,
        max_connections=args.max_connections,
        fault_profile=load_fault_profile(args.fault_profile, args),
        admin_token=args.admin_token,
        **overrides,
    )
    app = replay.wrap(create_app(config), args)
    print(
        f"nanogpt-mock: serving the NanoGPT image API on http://{args.host}:{args.port} "
        f"(OpenAI SDK base_url: http://{args.host}:{args.port}/api/v1)",
        file=sys.stderr,
        flush=True,
    )
    # the access log costs a logger call per request: on at info and below, off when asked for quiet
    access_log = args.log_level in ("info", "debug", "trace")
    install_log_redaction()  # no API key in the access log (/_mock/balances/<key>, ?key=)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=access_log, **server_limits(app)
    )
    return 0


def _command(name: str) -> Any:
    """A subcommand another installed package registers (``nanogpt_mock.commands`` entry points).

    ``proxy`` comes from ``contracts.proxy``: resolved by name at run time, so mockserver imports nothing of it.
    """
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="nanogpt_mock.commands") if e.name == name]
    return found[0].load() if found else None
