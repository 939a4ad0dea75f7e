"""Recorded exchanges served back: ``nanogpt-mock --replay DIR``.

The validating proxy (``nanogpt-mock proxy --record DIR``) writes one JSON file per exchange in the
format defined here; ``ReplayApp`` wraps the mock's ASGI app and answers a request with the recorded
response whose request matches (method, path, query and the body's content, independent of JSON key
order or multipart boundaries), else hands it to the wrapped mock, or answers 404 (``--replay-fallback
404``). It lives beside the mock, not in the engine: a recording is a layer in front of it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import MockError
from .validation import media_type_of, parse_multipart

RECORDING_FORMAT = "nanogpt-recording/1"
# never written to a recording, whatever their value
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization", "x-mock-admin-token"}
)
# recomputed or meaningless once stored (bodies are stored decoded)
UNSTORED_HEADERS = frozenset(
    {"host", "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "date", "server"}
)
FALLBACKS = ("mock", "404")


def canonical_body(content_type: str | None, body: bytes) -> bytes:
    """The body as a matcher sees it: JSON re-serialised with sorted keys, multipart by part contents."""
    media = media_type_of(content_type)
    try:
        if media == "application/json" and body.strip():
            return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        if media == "multipart/form-data":
            fields, files = parse_multipart(content_type or "", body)
            hashed = {name: [hashlib.sha256(f.data).hexdigest() for f in parts] for name, parts in files.items()}
            return json.dumps({"fields": fields, "files": hashed}, sort_keys=True, default=str).encode()
    except (ValueError, MockError):
        pass
    return body


def match_key(method: str, path: str, query: str, content_type: str | None, body: bytes) -> str:
    """Which recorded exchange answers this request (same method, path, query, body content)."""
    pairs = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    digest = hashlib.sha256(f"{method.upper()} {path}?{pairs}\n".encode())
    digest.update(canonical_body(content_type, body))
    return digest.hexdigest()


def stored_body(raw: bytes) -> dict[str, str]:
    """A body as a recording holds it: text when it is UTF-8 (byte-identical on replay), else base64."""
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def body_bytes(stored: Mapping[str, Any]) -> bytes:
    if "text" in stored:
        return str(stored["text"]).encode("utf-8")
    return base64.b64decode(str(stored.get("base64", "")))


def storable_headers(headers: Any) -> list[list[str]]:
    """Header pairs a recording may keep: no credentials, nothing recomputed on replay."""
    return [[k.lower(), v] for k, v in headers if k.lower() not in SECRET_HEADERS | UNSTORED_HEADERS]


def load_recordings(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """match key -> the recorded responses for it, in recording order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("format") == RECORDING_FORMAT and isinstance(entry.get("match"), str):
            out.setdefault(entry["match"], []).append(entry["response"])
    return out


class ReplayApp:
    """Serve recorded answers for matching requests, else the wrapped app (``fallback="mock"``) or 404.

    Several recordings of the same request are served in turn; the last one repeats.
    """

    def __init__(self, app: ASGIApp, directory: Path, fallback: str = "mock") -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, not {fallback!r}")
        self.app, self.fallback = app, fallback
        self.recordings = load_recordings(directory)
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()

    def _next(self, key: str) -> dict[str, Any] | None:
        answers = self.recordings.get(key)
        if not answers:
            return None
        with self._lock:
            index = self._served.get(key, 0)
            self._served[key] = index + 1
        return answers[min(index, len(answers) - 1)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan stays the mock's
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        answer = self._next(match_key(scope["method"], scope["path"], query, headers.get("content-type"), body))
        if answer is not None:
            raw = body_bytes(answer.get("body") or {})
            out = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in answer.get("headers") or []]
            out.append((b"content-length", str(len(raw)).encode()))
            await send({"type": "http.response.start", "status": int(answer["status"]), "headers": out})
            await send({"type": "http.response.body", "body": raw})
            return
        if self.fallback == "404":
            message_text = f"No recorded exchange matches {scope['method']} {scope['path']} (replay fallback: 404)."
            raw = json.dumps(
                {"error": {"message": message_text, "type": "not_found_error", "code": "no_recording"}}
            ).encode()
            start = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
            await send({"type": "http.response.start", "status": 404, "headers": start})
            await send({"type": "http.response.body", "body": raw})
            return
        sent = False

        async def again() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # after the body: disconnect notices come from the server
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, again, send)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--replay DIR`` and ``--replay-fallback`` on ``nanogpt-mock``."""
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="DIR",
        help="serve the exchanges recorded by `nanogpt-mock proxy --record DIR` for matching requests",
    )
    parser.add_argument(
        "--replay-fallback",
        choices=FALLBACKS,
        default="mock",
        help="what answers a request no recording matches: the normal mock (default) or 404",
    )


def wrap(app: ASGIApp, args: argparse.Namespace) -> ASGIApp:
    """The app ``nanogpt-mock`` serves: ``app`` itself, or ``app`` behind the recordings of ``--replay``."""
    directory: Path | None = getattr(args, "replay", None)
    if directory is None:
        return app
    if not directory.is_dir():
        raise SystemExit(f"nanogpt-mock: --replay {directory}: not a directory")
    return ReplayApp(app, directory, args.replay_fallback)
