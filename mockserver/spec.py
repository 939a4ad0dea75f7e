"""The spec index (public): load the OpenAPI document once and index what the mock needs from it.

Everything request- and response-shaped comes from here: paths, security, compiled request
validators, and the per-operation error tables (``x-error-codes`` + examples keyed by code).
Nothing is read from the raw document after start-up.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml


class MockServerError(Exception):
    """Root of every exception the toolkit raises deliberately (defined here: this module imports no other)."""


class SpecError(MockServerError):
    """The spec or the catalog breaks a convention the mock relies on (raised at start-up)."""


@dataclass(frozen=True, slots=True)
class ErrorTemplate:
    """One documented error of one operation: its status, its example body and envelope facts."""

    code: str
    status: int
    body: Mapping[str, Any]
    param_key: str | None = None
    headers: tuple[str, ...] = ()


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SLASH_EXTENSION = "x-path-param-may-contain-slashes"


def default_spec_path() -> Path:
    """The spec shipped in the wheel, or the repository's ``spec/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled_spec" / "openapi.yaml", here.parent / "spec" / "openapi.yaml"):
        if candidate.is_file():
            return candidate
    raise SpecError(f"openapi.yaml not found next to {here} nor in {here.parent / 'spec'}")


def load_yaml(path: Path) -> Any:
    """Parse YAML with the C loader when present (the spec is large; start-up time matters)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        return yaml.load(fh, Loader=loader)


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """How one scheme carries a key: ``bearer`` (Authorization header) or an API-key header."""

    name: str
    kind: str  # "bearer" | "header"
    header: str  # lower-cased header name


@dataclass(frozen=True, slots=True)
class BodyMedia:
    """One accepted request media type with its compiled validator."""

    media_type: str
    schema: Mapping[str, Any]  # $refs resolved at the top level (for coercion hints)
    validator: Any  # jsonschema_rs validator
    defaults: Mapping[str, Any] = field(default_factory=dict)  # top-level property -> its `default`


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    """One spec operation, indexed for the request pipeline."""

    operation_id: str
    method: str
    path: str
    pattern: re.Pattern[str]
    path_params: tuple[str, ...]
    security: tuple[tuple[SecurityScheme, ...], ...]  # alternatives; () inside = anonymous allowed
    bodies: Mapping[str, BodyMedia]
    body_required: bool
    query: tuple[QueryParam, ...]
    query_validator: Any | None
    header_params: tuple[QueryParam, ...]  # names lower-cased
    header_validator: Any | None
    errors: Mapping[str, ErrorTemplate]
    success_status: int
    deprecated: bool = False
    x402_anonymous: bool = False  # ``x-x402-anonymous``: the ``{}`` alternative needs ``x-x402: true``

    @cached_property
    def query_defaults(self) -> dict[str, Any]:
        return defaults_of({q.name: q.schema for q in self.query})

    @cached_property
    def headers_required(self) -> bool:
        return any(p.required for p in self.header_params)

    @cached_property
    def anonymous_allowed(self) -> bool:
        """Anyone may call it; an x402 operation's ``{}`` alternative only holds for quote requests."""
        return not self.x402_anonymous and any(len(alt) == 0 for alt in self.security)

    def error(self, code: str) -> ErrorTemplate | None:
        return self.errors.get(code)


@dataclass(frozen=True)
class Spec:
    """The loaded document and its operations."""

    document: Mapping[str, Any]
    operations: tuple[Operation, ...]
    by_id: Mapping[str, Operation] = field(repr=False)
    path: Path | None = None
    _response_validators: dict[tuple[str, int, str], Any] = field(default_factory=dict, repr=False)

    def any_error(self, code: str) -> ErrorTemplate | None:
        """``code`` as some operation documents it: the fallback for a code raised where it is not documented."""
        for op in self.operations:
            template = op.errors.get(code)
            if template is not None:
                return template
        return None

    def extension_errors(self, name: str) -> dict[str, ErrorTemplate]:
        """Error templates of a document-level extension holding ``{status: response}`` (``x-routing-errors``)."""
        return _error_table(self.document, name, self.document.get(name, {}))

    def resolve(self, node: Any) -> Any:
        """Follow local ``$ref``s until a non-reference node is reached."""
        return resolve(self.document, node)

    def response_problems(self, operation_id: str, status: int, media_type: str, body: Any) -> list[str]:
        """Why a response does not conform to the spec (empty when it does).

        Used by the tests and the contract checks to hold every answer of the mock to the spec.
        """
        op = self.by_id[operation_id]
        raw = self.document["paths"][op.path][op.method.lower()]["responses"]
        declared = raw.get(str(status)) or raw.get(f"{str(status)[0]}XX") or raw.get("default")
        if declared is None:
            return [f"status {status} is not declared for {operation_id}"]
        content = resolve(self.document, declared).get("content", {})
        if not content:
            return []
        media = content.get(media_type.split(";")[0].strip())
        if media is None:
            return [f"{media_type} is not declared for {operation_id} {status}: {sorted(content)}"]
        if "schema" not in media or not isinstance(body, (dict, list)):
            return []
        key = (operation_id, status, media_type)
        validator = self._response_validators.get(key)
        if validator is None:
            validator = self._response_validators[key] = _compile(self.document, media["schema"])
        return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(body)]


def resolve(document: Mapping[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise SpecError(f"only local $refs are supported, got {ref!r}")
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                target = target[part]
            except (KeyError, TypeError):
                raise SpecError(f"$ref {ref!r} does not resolve") from None
        node = target
        seen += 1
        if seen > 64:
            raise SpecError(f"$ref cycle at {ref!r}")
    return node


def _compile(document: Mapping[str, Any], schema: Any) -> Any:
    """Compile a schema against the whole document so ``#/components/...`` refs resolve."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema]}
    root.update({k: v for k, v in document.items() if k == "components"})
    # formats are asserted (a `uri` must be one); unknown ones such as `binary` pass
    return jsonschema_rs.validator_for(root, validate_formats=True, ignore_unknown_formats=True)


def defaults_of(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The ``default`` of every property that declares one: read once, applied to every request."""
    return {name: s["default"] for name, s in properties.items() if isinstance(s, dict) and "default" in s}


def _params_validator(document: Mapping[str, Any], params: tuple[QueryParam, ...]) -> Any | None:
    """One compiled object schema for a set of query or header parameters."""
    if not params:
        return None
    schema = {
        "type": "object",
        "properties": {q.name: q.schema for q in params},
        "required": [q.name for q in params if q.required],
    }
    return _compile(document, schema)


def _path_pattern(path: str, params: Mapping[str, Mapping[str, Any]]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    names: list[str] = []
    regex = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            names.append(name)
            greedy = bool(params.get(name, {}).get(SLASH_EXTENSION))
            regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(piece)
    return re.compile(f"^{regex}$"), tuple(names)


def _security(document: Mapping[str, Any], requirements: Any) -> tuple[tuple[SecurityScheme, ...], ...]:
    schemes_doc = document.get("components", {}).get("securitySchemes", {})
    alternatives: list[tuple[SecurityScheme, ...]] = []
    for requirement in requirements or [{}]:
        schemes: list[SecurityScheme] = []
        for name in requirement:
            raw = resolve(document, schemes_doc.get(name))
            if not isinstance(raw, dict):
                raise SpecError(f"security scheme {name!r} is not defined")
            if raw.get("type") == "http" and str(raw.get("scheme", "")).lower() == "bearer":
                schemes.append(SecurityScheme(name, "bearer", "authorization"))
            elif raw.get("type") == "apiKey" and raw.get("in") == "header":
                schemes.append(SecurityScheme(name, "header", str(raw["name"]).lower()))
            else:
                raise SpecError(f"security scheme {name!r} of type {raw.get('type')!r} is not supported")
        alternatives.append(tuple(schemes))
    return tuple(alternatives)


def _error_table(document: Mapping[str, Any], op_id: str, responses: Mapping[str, Any]) -> dict[str, ErrorTemplate]:
    table: dict[str, ErrorTemplate] = {}
    for status_text, raw in responses.items():
        if not status_text.isdigit() or int(status_text) < 400:
            continue
        response = resolve(document, raw)
        codes = response.get("x-error-codes")
        if not codes:
            raise SpecError(f"{op_id} {status_text}: error response without x-error-codes")
        media = response.get("content", {}).get("application/json", {})
        examples = media.get("examples", {})
        schema = resolve(document, media.get("schema", {}))
        headers = tuple(str(h).lower() for h in response.get("headers", {}))
        for code in codes:
            example = resolve(document, examples.get(code))
            if not isinstance(example, dict) or "value" not in example:
                raise SpecError(f"{op_id} {status_text}: no example named {code!r}")
            if code in table:
                raise SpecError(f"{op_id}: code {code!r} listed under {table[code].status} and {status_text}")
            body = example["value"]
            table[code] = ErrorTemplate(
                code=code,
                status=int(status_text),
                body=body,
                param_key=_param_key(document, schema, body),
                headers=headers,
            )
    return table


def _param_key(document: Mapping[str, Any], schema: Any, body: Any) -> str | None:
    """The envelope's name for the offending field: ``param`` (OpenAI) or ``parameter`` (Image API)."""
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        for key in ("parameter", "param"):
            if key in inner:
                return key
    for candidate in _walk_schemas(document, schema):
        props = resolve(document, candidate.get("properties", {}).get("error", {}))
        if isinstance(props, dict):
            inner_props = props.get("properties", {})
            for key in ("parameter", "param"):
                if key in inner_props:
                    return key
    return None


def _walk_schemas(document: Mapping[str, Any], schema: Any) -> Iterator[dict[str, Any]]:
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return
    yield schema
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _walk_schemas(document, sub)


def _operation(
    document: Mapping[str, Any], path: str, method: str, raw: Mapping[str, Any], path_item: Mapping[str, Any]
) -> Operation:
    op_id = raw.get("operationId")
    if not isinstance(op_id, str):
        raise SpecError(f"{method.upper()} {path} has no operationId")
    params = [resolve(document, p) for p in [*path_item.get("parameters", []), *raw.get("parameters", [])]]
    path_params = {p["name"]: p for p in params if p.get("in") == "path"}
    pattern, names = _path_pattern(path, path_params)
    query = tuple(
        QueryParam(p["name"], bool(p.get("required")), resolve(document, p.get("schema", {})))
        for p in params
        if p.get("in") == "query"
    )
    header_params = tuple(
        QueryParam(p["name"].lower(), bool(p.get("required")), resolve(document, p.get("schema", {})))
        for p in params
        if p.get("in") == "header"
    )
    query_validator = _params_validator(document, query)
    header_validator = _params_validator(document, header_params)
    bodies: dict[str, BodyMedia] = {}
    body_required = False
    if "requestBody" in raw:
        request_body = resolve(document, raw["requestBody"])
        body_required = bool(request_body.get("required"))
        for media_type, media in request_body.get("content", {}).items():
            schema = media.get("schema", {})
            resolved = resolve(document, schema)
            bodies[media_type] = BodyMedia(
                media_type, resolved, _compile(document, schema), defaults_of(resolved.get("properties", {}))
            )
    responses = raw.get("responses", {})
    successes = sorted(int(s) for s in responses if s.isdigit() and 200 <= int(s) < 300)
    if not successes:
        raise SpecError(f"{op_id} declares no 2xx response")
    security = _security(document, raw.get("security", document.get("security")))
    return Operation(
        operation_id=op_id,
        method=method.upper(),
        path=path,
        pattern=pattern,
        path_params=names,
        security=security,
        bodies=bodies,
        body_required=body_required,
        query=query,
        query_validator=query_validator,
        header_params=header_params,
        header_validator=header_validator,
        errors=_error_table(document, op_id, responses),
        success_status=successes[0],
        deprecated=bool(raw.get("deprecated")),
        x402_anonymous=bool(raw.get("x-x402-anonymous")),
    )


def build_spec(document: Mapping[str, Any], path: Path | None = None) -> Spec:
    """Index a parsed document (exposed for tests that hand in a modified spec)."""
    operations: list[Operation] = []
    for op_path, item in document.get("paths", {}).items():
        item = resolve(document, item)
        for method in HTTP_METHODS:
            if method in item:
                operations.append(_operation(document, op_path, method, item[method], item))
    by_id = {op.operation_id: op for op in operations}
    if len(by_id) != len(operations):
        raise SpecError("duplicate operationId in the spec")
    return Spec(document=document, operations=tuple(operations), by_id=by_id, path=path)


MOCK_ONLY = "x-mock-only"


def without_mock_only(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document as NanoGPT itself serves it: parameters marked ``x-mock-only`` (the ``Prefer``
    control header) removed, for contract runs whose generators must not explore mock controls."""
    components = document.get("components", {}).get("parameters", {})
    mock_only = {f"#/components/parameters/{name}" for name, p in components.items() if p.get(MOCK_ONLY)}

    def keep(parameter: Any) -> bool:
        return not (isinstance(parameter, dict) and (parameter.get("$ref") in mock_only or parameter.get(MOCK_ONLY)))

    out = copy.deepcopy(dict(document))
    for item in out.get("paths", {}).values():
        for node in [item, *(item[m] for m in HTTP_METHODS if m in item)]:
            if "parameters" in node:
                node["parameters"] = [p for p in node["parameters"] if keep(p)]
                if not node["parameters"]:
                    del node["parameters"]
    return out


@lru_cache(maxsize=8)
def load_spec(path: Path | None = None) -> Spec:
    """Load and index the spec; cached per path, because compiling validators is start-up work."""
    spec_path = path or default_spec_path()
    document = load_yaml(spec_path)
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1"):
        raise SpecError(f"{spec_path} is not an OpenAPI 3.1 document")
    return build_spec(document, spec_path)
