"""Turn raw request bytes into data the handlers trust, or a documented error code.

Parsing (JSON, multipart) and schema checks use the spec's own schemas, compiled once at
start-up (``spec.BodyMedia.validator``). Handlers only see bodies that passed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import MockError
from .spec import BodyMedia, Operation


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart body; kept as bytes (the body was size-capped while streaming)."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:  # never dump image bytes into logs
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ParsedBody:
    media_type: str
    data: dict[str, Any]
    files: Mapping[str, tuple[UploadedFile, ...]]


@dataclass(frozen=True)
class Input:
    """A request's input after validation: what a handler trusts.

    ``body`` passed the operation's schema and carries the spec's ``default`` for every top-level
    property the request left out, so no handler writes a fallback; ``given`` names what the request
    really sent (a default is not a choice the caller made). Multipart bodies keep their text fields
    (``fields``) and file parts (``files``) apart, as sent.
    """

    media_type: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()
    fields: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, tuple[UploadedFile, ...]] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)

    @property
    def multipart(self) -> bool:
        return (self.media_type or "").startswith("multipart/")


Precheck = Callable[[ParsedBody], None]


def validate(
    operation: Operation,
    method: str,
    headers: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    *,
    precheck: Precheck | None = None,
    code_for_param: Mapping[str, str] | None = None,
) -> Input:
    """Header and query parameters, then the body: parsed, ``precheck``ed (rules the docs put before
    the schema), judged by the compiled schema, and completed with the schema's defaults."""
    if operation.header_validator is not None:
        view = header_view(operation, headers)
        if view or operation.headers_required:
            error = schema_error(operation.header_validator, view)
            if error:
                raise error
    query_values: dict[str, Any] = {}
    if operation.query:
        query_values = query_view(operation, query)
        error = schema_error(operation.query_validator, query_values, code_for_param={})
        if error:
            raise error
        query_values = _with_defaults(query_values, operation.query_defaults)
    if not operation.bodies or method.upper() == "HEAD":
        return Input(query=query_values)
    parsed = parse_body(operation, headers.get("content-type"), body)
    if precheck is not None:
        precheck(parsed)
    media = operation.bodies[parsed.media_type]
    multipart = bool(parsed.files) or media.media_type.startswith("multipart/")
    instance = form_view(media, parsed) if multipart else parsed.data
    error = schema_error(media.validator, instance, code_for_param=code_for_param)
    if error:
        raise error
    return Input(
        media_type=parsed.media_type,
        body=_with_defaults(instance, media.defaults),
        given=frozenset(instance),
        fields=parsed.data if multipart else {},
        files=parsed.files,
        query=query_values,
    )


def _with_defaults(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for name, default in defaults.items():
        if name not in out:
            out[name] = default
    return out


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(operation: Operation, content_type: str | None, body: bytes) -> ParsedBody:
    """Parse the body in one of the media types the operation accepts."""
    media_type = media_type_of(content_type)
    if media_type not in operation.bodies:
        accepted = " or ".join(operation.bodies)
        raise MockError(
            "invalid_content_type",
            f"{operation.path} accepts {accepted} requests, got {media_type or 'no Content-Type'}.",
        )
    if media_type == "multipart/form-data":
        fields, files = parse_multipart(content_type or "", body)
        return ParsedBody(media_type, fields, files)
    data = _loads(body) if body.strip() else None
    if not isinstance(data, dict):
        raise MockError("invalid_json", "Request body must be a JSON object.")
    return ParsedBody(media_type, data, {})


_LONG_NUMBER = re.compile(rb"\d{19}")


def _loads(body: bytes) -> Any:
    """JSON as the stdlib reads it, at orjson's speed where the two agree.

    orjson turns integers past 64 bits into floats and refuses NaN/Infinity; bodies that could hold
    either go to the stdlib parser, so the result never depends on which parser ran.
    """
    if not _LONG_NUMBER.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MockError("invalid_json", f"Request body is not valid JSON: {exc}.") from None
    where = _surrogate_path(data)
    if where is not None:  # only the stdlib lets "\ud800" through; such text has no UTF-8 form
        raise MockError(
            "invalid_json",
            f"Request body is not valid JSON: {where or 'the body'} holds an unpaired UTF-16 surrogate "
            "(JSON text must be valid Unicode).",
        )
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_path(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds a lone surrogate (in a string or a key), as a dotted path; else ``None``."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}".lstrip(".")
            if _SURROGATE.search(key):
                return path or "a property name"
            found = _surrogate_path(item, name)
            if found is not None:
                return found
    return None


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, tuple[UploadedFile, ...]]]:
    """Parse multipart/form-data from bytes with python-multipart's streaming parser.

    Repeated fields (``image[]``) become lists; file parts go to the second mapping.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise MockError("invalid_multipart_body", "multipart/form-data body without a boundary parameter.")
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_name = bytearray()
    header_value = bytearray()
    state: dict[str, Any] = {}

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_end() -> None:
        state["ended"] = True

    try:  # python-multipart refuses some boundaries (e.g. longer than 256 bytes) when it is built
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_part_data": on_part_data,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_end": on_end,
            },
        )
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise MockError("invalid_multipart_body", f"Malformed multipart body: {exc}.") from None
    if not state.get("ended") or not parts:
        raise MockError(
            "invalid_multipart_body", "Malformed multipart body: it does not end with the closing boundary."
        )
    fields: dict[str, Any] = {}
    files: dict[str, list[UploadedFile]] = {}
    for headers, payload in parts:
        disposition, params = parse_options_header(headers.get(b"content-disposition", b""))
        name_raw = params.get(b"name")
        if disposition != b"form-data" or name_raw is None:
            raise MockError(
                "invalid_multipart_body", "Every multipart part needs Content-Disposition: form-data; name=..."
            )
        name = name_raw.decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None:
            content = headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
            files.setdefault(name, []).append(
                UploadedFile(filename.decode("utf-8", "replace"), content, bytes(payload))
            )
            continue
        try:
            value = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise MockError("invalid_multipart_body", f"Field '{name}' is not UTF-8 text.", name) from None
        if name in fields:
            existing = fields[name]
            fields[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            fields[name] = value
    return fields, {k: tuple(v) for k, v in files.items()}


def form_view(media: BodyMedia, parsed: ParsedBody) -> dict[str, Any]:
    """A JSON view of a multipart body for schema validation.

    Text parts are coerced to the types the schema declares (multipart carries text only) and
    file parts stand in as strings, so the one compiled schema judges both transports.
    """
    properties = media.schema.get("properties", {}) if isinstance(media.schema, dict) else {}
    view: dict[str, Any] = {}
    for name, value in parsed.data.items():
        view[name] = _coerce(value, properties.get(name, {}))
    for name, uploads in parsed.files.items():
        prop = properties.get(name, {})
        if _declares(prop, "array") or len(uploads) > 1:
            view[name] = [*as_list(view.get(name)), *(u.filename or "upload" for u in uploads)]
        else:
            view[name] = uploads[0].filename or "upload"
    return view


def as_list(value: Any) -> list[Any]:
    """A field that may be absent, empty, one value or repeated, as a list."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _declares(schema: Any, type_name: str) -> bool:
    if not isinstance(schema, dict):
        return False
    declared = schema.get("type")
    if declared == type_name or (isinstance(declared, list) and type_name in declared):
        return True
    return any(_declares(s, type_name) for key in ("oneOf", "anyOf") for s in schema.get(key, []))


def _coerce(value: Any, schema: Any) -> Any:
    if isinstance(value, list):
        item_schema = schema.get("items", {}) if isinstance(schema, dict) else {}
        return [_coerce(v, item_schema) for v in value]
    if not isinstance(value, str):
        return value
    if _declares(schema, "integer"):
        try:
            return int(value)
        except ValueError:
            return value
    if _declares(schema, "number"):
        try:
            return float(value)
        except ValueError:
            return value
    if _declares(schema, "boolean") and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def schema_error(
    validator: Any,
    instance: Any,
    *,
    required_code: str = "missing_required_parameter",
    code_for_param: Mapping[str, str] | None = None,
) -> MockError | None:
    """Judge ``instance`` with a compiled schema; map the most useful error to a documented code."""
    errors = list(validator.iter_errors(instance))
    if not errors:
        return None
    chosen = sorted(errors, key=lambda e: (_kind(e) != "Required", len(e.instance_path)))[0]
    path = list(chosen.instance_path)
    if _kind(chosen) == "Required" and not path:
        name = _required_name(chosen)
        code = (code_for_param or {}).get(name, required_code) if name else required_code
        return MockError(code, f"Missing required parameter: '{name}'.", name)
    param = str(path[0]) if path else None
    code = (code_for_param or {}).get(param or "", "invalid_parameter_value")
    where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return MockError(code, f"Invalid value for '{where or 'body'}': {chosen.message}.", param)


def _kind(error: Any) -> str:
    return type(error.kind).__name__


def _required_name(error: Any) -> str | None:
    prop = getattr(error.kind, "property", None)
    if isinstance(prop, str):
        return prop
    message = str(error.message)
    return message.split('"')[1] if message.count('"') >= 2 else None


def header_view(operation: Operation, headers: Mapping[str, str]) -> dict[str, Any]:
    """Header parameters the operation declares that the request carries, coerced to their types."""
    return {p.name: _coerce(headers[p.name], p.schema) for p in operation.header_params if p.name in headers}


def query_view(operation: Operation, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters the operation declares, coerced to their schema types."""
    declared = {q.name: q.schema for q in operation.query}
    view: dict[str, Any] = {}
    for name, value in pairs:
        if name in declared:
            view[name] = _coerce(value, declared[name])
    return view


def model_named_in(body: bytes) -> str | None:
    """The model a refused JSON request asked for, for the journal (cheap: only bodies that name one)."""
    if b'"model"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None
