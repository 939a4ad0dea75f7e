"""``nanogpt-mock``: serve the mock on uvicorn. Every flag has a matching environment variable.

Exit codes: 0 stopped normally; 2 a bad flag, environment value, catalog or fault profile, or an
address that cannot be listened on. Every such problem is reported on one line of stderr, all of
them at once, never as a traceback; nothing is announced before the socket is bound.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import yaml

from . import replay
from .admin import fault_profile_problems
from .catalog import catalog_problems
from .config import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_REQUEST_PIXELS, DEFAULT_WORKER_THREADS, MockConfig
from .controls import FaultProfile
from .errors import SpecError
from .spec import load_yaml

ENV_PREFIX = "NANOGPT_MOCK_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULTS = MockConfig()  # every other default is MockConfig's: stated once
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
EXIT_OK, EXIT_USAGE = 0, 2
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


# -- value checks: each returns the value or raises ValueError naming what is wrong ------------------
def _port(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError("is not a port (a whole number from 0 to 65535)")
    return int(text)


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError("is not a non-negative number")
    return value


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError("is not a positive whole number")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("is not a positive number")
    return value


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("is not one of 1/true/yes/on, 0/false/no/off")


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"is not one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def _base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("is not an http(s)://host[:port] URL")
    return text


def _file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError("does not exist" if not path.exists() else "is not a file")
    return path


def _read_document(path: Path, what: str, problems: list[str]) -> Any:
    """The parsed YAML/JSON file, or None with the problem appended (one line, with line:column)."""
    try:
        return load_yaml(path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problems.append(f"{what} {path} is not valid YAML{where}: {exc.problem or exc.context}")
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        problems.append(f"{what} {path} cannot be read: {' '.join(str(exc).split())}")
    return None


@dataclass
class Settings:
    """The validated command line and environment."""

    host: str
    port: int
    api_keys: frozenset[str]
    balance: Decimal
    catalog: Path | None
    url_ttl: int
    signing_secret: str | None
    presign_failure: bool
    public_base_url: str | None
    max_body_bytes: int
    limits: dict[str, Any]  # the MockConfig fields of the input and HTTP limits
    fault_profile: FaultProfile | None
    admin_token: str | None
    log_level: str


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Settings | None, list[str]]:
    """Flags over environment over defaults, every value checked; returns the settings or every problem."""
    problems: list[str] = []

    def pick(flag: str, env: str, check: Callable[[str], T], default: T) -> T:
        raw: Any = getattr(args, flag.lstrip("-").replace("-", "_"))
        source = flag
        if raw is None:
            raw, source = environ.get(ENV_PREFIX + env), ENV_PREFIX + env
        if raw is None or (source != flag and raw == ""):
            return default
        try:
            return check(str(raw))
        except ValueError as exc:
            shown = f"{source}={raw!r}" if source != flag else f"{flag} {raw!r}"
            problems.append(f"{shown} {exc}")
            return default

    host = pick("--host", "HOST", str, DEFAULT_HOST)
    port = pick("--port", "PORT", _port, DEFAULT_PORT)
    balance = pick("--balance", "BALANCE", _money, DEFAULTS.balance)
    catalog = pick("--catalog", "CATALOG", _file, None)
    url_ttl = pick("--url-ttl", "URL_TTL", _positive_int, DEFAULTS.url_ttl)
    public_base_url = pick("--public-base-url", "PUBLIC_BASE_URL", _base_url, None)
    max_body_bytes = pick("--max-body-bytes", "MAX_BODY_BYTES", _positive_int, DEFAULTS.max_body_bytes)
    server_limits = {
        "max_input_pixels": pick("--max-input-pixels", "MAX_INPUT_PIXELS", _positive_int, DEFAULT_MAX_INPUT_PIXELS),
        "max_request_pixels": pick(
            "--max-request-pixels", "MAX_REQUEST_PIXELS", _positive_int, DEFAULT_MAX_REQUEST_PIXELS
        ),
        "worker_threads": pick("--worker-threads", "WORKER_THREADS", _positive_int, DEFAULT_WORKER_THREADS),
        "header_timeout": pick("--header-timeout", "HEADER_TIMEOUT", _positive_float, 10.0),
        "body_timeout": pick("--body-timeout", "BODY_TIMEOUT", _positive_float, 30.0),
        "keep_alive_timeout": pick("--keep-alive-timeout", "KEEP_ALIVE_TIMEOUT", _positive_int, 5),
        "max_header_bytes": pick("--max-header-bytes", "MAX_HEADER_BYTES", _positive_int, 65536),
        "max_connections": pick("--max-connections", "MAX_CONNECTIONS", _positive_int, 512),
        "cors": args.cors if args.cors is not None else pick("--cors", "CORS", _switch, True),  # a MockConfig field
    }
    fault_file = pick("--fault-profile", "FAULT_PROFILE", _file, None)
    limits: dict[str, Any] = {
        "rate_limit_rps": pick("--rate-limit-rps", "RATE_LIMIT_RPS", _positive_float, None),
        "daily_request_limit": pick("--daily-request-limit", "DAILY_REQUEST_LIMIT", _positive_int, None),
        "daily_usd_limit": pick("--daily-usd-limit", "DAILY_USD_LIMIT", _money, None),
    }
    log_level = pick("--log-level", "LOG_LEVEL", _log_level, "info")
    presign_failure = bool(args.presign_failure) or pick("--presign-failure", "PRESIGN_FAILURE", _switch, False)
    keys = args.api_keys or (environ.get(ENV_PREFIX + "API_KEYS") or "").split(",")
    api_keys = frozenset(k.strip() for k in keys if k.strip())
    if args.api_keys and len(api_keys) != len(args.api_keys):
        problems.append("--api-key '' is empty")
    if not host.strip():
        problems.append("--host is empty")
    raw = None if catalog is None else _read_document(catalog, "catalog", problems)
    if raw is not None and (found := catalog_problems(raw)):
        problems.append(f"catalog {catalog}: " + "; ".join(found))
    profile = load_fault_profile(fault_file, limits, problems)
    recordings = getattr(args, "replay", None)
    if recordings is not None and not recordings.is_dir():
        problems.append(f"--replay {recordings}: not a directory")
    if problems:
        return None, problems
    return (
        Settings(
            host=host,
            port=port,
            api_keys=api_keys,
            balance=balance,
            catalog=catalog,
            url_ttl=url_ttl,
            signing_secret=pick("--signing-secret", "SIGNING_SECRET", str, None),
            presign_failure=presign_failure,
            public_base_url=public_base_url,
            max_body_bytes=max_body_bytes,
            limits=server_limits,
            fault_profile=profile,
            admin_token=pick("--admin-token", "ADMIN_TOKEN", str, None),
            log_level=log_level,
        ),
        [],
    )


def load_fault_profile(path: Path | None, limits: Mapping[str, Any], problems: list[str]) -> FaultProfile | None:
    """The profile file, schema-checked, with the limit flags laid over it; problems are appended."""
    raw: dict[str, Any] = {}
    if path is not None:
        loaded = _read_document(path, "fault profile", problems)
        if loaded is None:
            return None
        if not isinstance(loaded, dict):
            problems.append(f"fault profile {path} is not a mapping")
            return None
        raw = loaded
    for name, value in limits.items():
        if value is not None:
            raw[name] = int(value) if name == "daily_request_limit" else float(value)
    if not raw:
        return None
    found = fault_profile_problems(raw)
    if found:
        problems.append(f"fault profile {path or '(flags)'}: " + "; ".join(found))
        return None
    return FaultProfile.from_dict(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nanogpt-mock",
        description="Serve a faithful, offline fake of the NanoGPT image API, driven by its OpenAPI spec. "
        f"Every option can also be set through the environment variable shown (prefix {ENV_PREFIX}).",
        epilog="exit codes: 0 stopped normally (Ctrl-C / SIGTERM); 2 a bad flag, environment value, catalog "
        "or fault profile, or the address cannot be listened on (one line on stderr naming every problem). "
        "On start the first line on stderr names the real address: "
        "'nanogpt-mock: serving ... on http://HOST:PORT ...' (with --port 0, the port picked).",
    )
    parser.add_argument(
        "--host",
        help=f"interface to listen on [env {ENV_PREFIX}HOST, default {DEFAULT_HOST}]",
    )
    parser.add_argument(
        "--port",
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
        help=f"starting USD balance of every key [env {ENV_PREFIX}BALANCE, default {DEFAULTS.balance}]",
    )
    parser.add_argument(
        "--catalog",
        help="model catalog YAML replacing the built-in one (same format as "
        f"mockserver/catalog.yaml) [env {ENV_PREFIX}CATALOG]",
    )
    parser.add_argument(
        "--url-ttl",
        help="lifetime in seconds of the signed image URLs returned for response_format=url "
        f"[env {ENV_PREFIX}URL_TTL, default {DEFAULTS.url_ttl}]",
    )
    parser.add_argument(
        "--signing-secret",
        help="HMAC secret of image URLs; processes sharing it serve each other's URLs "
        f"[env {ENV_PREFIX}SIGNING_SECRET, default: a fixed development secret]",
    )
    parser.add_argument(
        "--presign-failure",
        action="store_true",
        default=None,
        help="emulate NanoGPT's documented upload/presign failure: answer b64_json even when "
        f"response_format=url was asked [env {ENV_PREFIX}PRESIGN_FAILURE]",
    )
    parser.add_argument(
        "--cors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"answer CORS preflights, Access-Control-Allow-Origin: * (like the live API) [env {ENV_PREFIX}CORS, on]",
    )
    parser.add_argument(
        "--public-base-url",
        help="scheme://host[:port] put into image URLs, when clients reach the mock through a "
        f"proxy [env {ENV_PREFIX}PUBLIC_BASE_URL, default: the request's Host]",
    )
    parser.add_argument(
        "--max-body-bytes",
        help="largest request body accepted; larger ones get 413 image_input_too_large while "
        f"streaming [env {ENV_PREFIX}MAX_BODY_BYTES, default 50331648]",
    )
    parser.add_argument(
        "--max-input-pixels",
        help="largest input image, in pixels its header declares; larger ones get 413 image_input_too_large "
        f"before any decoding [env {ENV_PREFIX}MAX_INPUT_PIXELS, default {DEFAULT_MAX_INPUT_PIXELS} = 4096x4096]",
    )
    parser.add_argument(
        "--max-request-pixels",
        help="all input images (and masks) of one request together, in declared pixels; 413 beyond "
        f"[env {ENV_PREFIX}MAX_REQUEST_PIXELS, default {DEFAULT_MAX_REQUEST_PIXELS}]",
    )
    parser.add_argument(
        "--worker-threads",
        help="threads decoding, rendering and encoding images off the event loop, at most this many at once "
        f"[env {ENV_PREFIX}WORKER_THREADS, default {DEFAULT_WORKER_THREADS}]",
    )
    parser.add_argument(
        "--header-timeout",
        help="seconds a client has to send its request line and headers; the connection is closed after "
        f"[env {ENV_PREFIX}HEADER_TIMEOUT, default 10]",
    )
    parser.add_argument(
        "--body-timeout",
        help="seconds a client has to send its whole request body; 408 request_timeout and close after "
        f"[env {ENV_PREFIX}BODY_TIMEOUT, default 30]",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        help=f"seconds an idle keep-alive connection stays open [env {ENV_PREFIX}KEEP_ALIVE_TIMEOUT, default 5]",
    )
    parser.add_argument(
        "--max-header-bytes",
        help="largest request line plus headers; 431 request_header_fields_too_large and close beyond "
        f"[env {ENV_PREFIX}MAX_HEADER_BYTES, default 65536]",
    )
    parser.add_argument(
        "--max-connections",
        help=f"connections (and requests in flight) at once; 503 beyond [env {ENV_PREFIX}MAX_CONNECTIONS, default 512]",
    )
    parser.add_argument(
        "--fault-profile",
        help="YAML/JSON fault profile (latency per model, error rate, rate and daily limits, "
        "presign failure rate, seed; schema FaultProfile in mockserver/admin-openapi.yaml) "
        f"[env {ENV_PREFIX}FAULT_PROFILE]",
    )
    parser.add_argument(
        "--rate-limit-rps",
        help="per-key requests per second before 429 rate_limit_exceeded; NanoGPT documents 25 "
        f"[env {ENV_PREFIX}RATE_LIMIT_RPS, default off]",
    )
    parser.add_argument(
        "--daily-request-limit",
        help="per-key requests per UTC day before 429 daily_rpd_limit_exceeded "
        f"[env {ENV_PREFIX}DAILY_REQUEST_LIMIT, default off]",
    )
    parser.add_argument(
        "--daily-usd-limit",
        help="per-key USD per UTC day before 429 daily_usd_limit_exceeded "
        f"[env {ENV_PREFIX}DAILY_USD_LIMIT, default off]",
    )
    parser.add_argument(
        "--admin-token",
        help="require this token in the x-mock-admin-token header of /_mock/ admin calls "
        f"[env {ENV_PREFIX}ADMIN_TOKEN, default: admin API open]",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        help=f"uvicorn and mock log level, one of {', '.join(LOG_LEVELS)} [env {ENV_PREFIX}LOG_LEVEL, default info]",
    )
    replay.add_arguments(parser)
    return parser


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); OSError names the problem in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"cannot listen on {host}:{port}: the port is already in use") from None
        if exc.errno == errno.EACCES:
            raise OSError(f"cannot listen on {host}:{port}: permission denied (ports below 1024 need root)") from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _fail(problems: Sequence[str]) -> int:
    print("nanogpt-mock: " + "; ".join(problems), file=sys.stderr, flush=True)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["catalog", "pull"]:
        from .catalog_pull import main as catalog_pull

        return catalog_pull(argv[2:])
    if argv and not argv[0].startswith("-") and (command := _command(argv[0])) is not None:  # e.g. `nanogpt-mock proxy`
        return int(command(argv[1:]))
    args = build_parser().parse_args(argv)
    settings, problems = resolve(args, os.environ)
    if settings is None:
        return _fail(problems)
    import uvicorn

    from .app import create_app
    from .config import MockConfig
    from .serving import install_log_redaction, server_limits

    overrides: dict[str, Any] = {} if settings.signing_secret is None else {"signing_secret": settings.signing_secret}
    config = MockConfig(
        api_keys=settings.api_keys,
        balance=settings.balance,
        catalog_path=settings.catalog,
        url_ttl=settings.url_ttl,
        presign_failure=settings.presign_failure,
        public_base_url=settings.public_base_url,
        max_body_bytes=settings.max_body_bytes,
        **settings.limits,
        fault_profile=settings.fault_profile,
        admin_token=settings.admin_token,
        **overrides,
    )
    try:
        app = replay.wrap(create_app(config), args)
    except (SpecError, KeyError, TypeError, ValueError) as exc:  # a catalog the checks above let through
        return _fail([f"catalog {settings.catalog}: {' '.join(str(exc).split())}"])
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        return _fail([str(exc)])
    port = int(sock.getsockname()[1])
    base = _url(settings.host, port)
    print(
        f"nanogpt-mock: serving the NanoGPT image API on {base} (OpenAI SDK base_url: {base}/api/v1)",
        file=sys.stderr,
        flush=True,
    )
    # the access log costs a logger call per request: on at info and below, off when asked for quiet
    access_log = settings.log_level in ("info", "debug", "trace")
    install_log_redaction()  # no API key in the access log (/_mock/balances/<key>, ?key=)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=port,
            log_level=settings.log_level,
            access_log=access_log,
            **server_limits(app, config),
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return EXIT_OK


def _command(name: str) -> Any:
    """A subcommand another installed package registers (``nanogpt_mock.commands`` entry points).

    ``proxy`` comes from ``contracts.proxy``: resolved by name at run time, so mockserver imports nothing of it.
    """
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="nanogpt_mock.commands") if e.name == name]
    return found[0].load() if found else None
