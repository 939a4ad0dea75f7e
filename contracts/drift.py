"""Drift: a fresh run against a stored snapshot, accepted drift (baseline), and the vendor's spec.

Each difference is a ``Finding`` of kind ``drift`` whose ``key`` names it without values, so a
baseline file can accept it and a later run only fails on drift nobody has accepted yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mockserver.spec import SpecError, resolve

from .model import Finding

BASELINE_FORMAT = "nanogpt-contract-baseline/1"


def _split(key: str) -> tuple[str, int | None, str | None]:
    parts = key.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return parts[0], status, (parts[2] if len(parts) > 2 else None)


def diff_snapshots(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    """Everything that changed between two snapshots, precisely located."""
    out: list[Finding] = []
    out += _diff_shapes(old.get("responses", {}), new.get("responses", {}))
    out += _diff_errors(old.get("errors", {}), new.get("errors", {}))
    out += _diff_catalog(old.get("catalog", {}).get("models", {}), new.get("catalog", {}).get("models", {}))
    old_images = {(i["operation_id"], i["format"], i["width"], i["height"]) for i in old.get("images", [])}
    new_images = {(i["operation_id"], i["format"], i["width"], i["height"]) for i in new.get("images", [])}
    for op, fmt, w, h in sorted(old_images - new_images):
        out.append(
            Finding("image_facts_changed", f"no longer returned: {fmt} {w}x{h}", op, path="$.data[*]", kind="drift")
        )
    for op, fmt, w, h in sorted(new_images - old_images):
        out.append(Finding("image_facts_changed", f"newly returned: {fmt} {w}x{h}", op, path="$.data[*]", kind="drift"))
    return out


def _diff_shapes(old: dict[str, dict[str, list[str]]], new: dict[str, dict[str, list[str]]]) -> list[Finding]:
    out: list[Finding] = []
    for key in sorted(set(old) | set(new)):
        op, status, code = _split(key)
        if key not in new:
            if code is None:
                out.append(
                    Finding("response_not_seen", f"{key} was recorded but not answered now", op, status, kind="drift")
                )
            continue  # error kinds are reported by _diff_errors
        if key not in old:
            if code is None:
                out.append(
                    Finding("response_new", f"{key} is answered now, it was not recorded", op, status, kind="drift")
                )
            continue
        before, after = old[key], new[key]
        for path in sorted(set(before) - set(after)):
            if _parent_gone(path, before, after):
                continue
            out.append(
                Finding(
                    "field_removed", f"{path} ({'/'.join(before[path])}) is gone", op, status, path, code, kind="drift"
                )
            )
        for path in sorted(set(after) - set(before)):
            if _parent_gone(path, after, before):
                continue
            out.append(
                Finding("field_added", f"{path} ({'/'.join(after[path])}) is new", op, status, path, code, kind="drift")
            )
        for path in sorted(set(before) & set(after)):
            if before[path] != after[path]:
                out.append(
                    Finding(
                        "field_retyped",
                        f"{path}: {'/'.join(before[path])} -> {'/'.join(after[path])}",
                        op,
                        status,
                        path,
                        code,
                        kind="drift",
                    )
                )
    return out


def _parent_gone(path: str, has: dict[str, Any], lacks: dict[str, Any]) -> bool:
    """Report a removed or added subtree once, at its root."""
    parent = path.rsplit(".", 1)[0] if "." in path else None
    if parent and parent.endswith("[*]"):
        parent = parent[:-3]
    return bool(parent) and parent != "$" and parent in has and parent not in lacks


def _diff_errors(old: dict[str, dict[str, int]], new: dict[str, dict[str, int]]) -> list[Finding]:
    out: list[Finding] = []
    for op in sorted(set(old) | set(new)):
        before, after = old.get(op, {}), new.get(op, {})
        for code in sorted(set(after) - set(before)):
            out.append(
                Finding(
                    "error_code_added",
                    f"{op} now answers {code} ({after[code]})",
                    op,
                    after[code],
                    code=code,
                    kind="drift",
                )
            )
        for code in sorted(set(before) - set(after)):
            out.append(
                Finding(
                    "error_code_removed",
                    f"{op} no longer answers {code} ({before[code]})",
                    op,
                    before[code],
                    code=code,
                    kind="drift",
                )
            )
        for code in sorted(set(before) & set(after)):
            if before[code] != after[code]:
                out.append(
                    Finding(
                        "error_status_changed",
                        f"{code}: {before[code]} -> {after[code]}",
                        op,
                        after[code],
                        code=code,
                        kind="drift",
                    )
                )
    return out


_MODEL_FACETS = (
    ("supported_parameters", "model_parameter_changed", "imagesListModels", "$.supported_parameters.{}"),
    ("prices", "price_changed", "imagesListModelEndpoints", "$.pricing[{}]"),
    ("capabilities", "model_capability_changed", "imagesListModels", "$.capabilities.{}"),
)


def _diff_catalog(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    for model in sorted(set(new) - set(old)):
        out.append(Finding("model_added", f"new model {model}", "imagesListModels", model=model, kind="drift"))
    for model in sorted(set(old) - set(new)):
        out.append(Finding("model_removed", f"model {model} is gone", "imagesListModels", model=model, kind="drift"))
    for model in sorted(set(old) & set(new)):
        before, after = old[model], new[model]
        # (snapshot key, check, operation that publishes it, JSON path template)
        for key, check, operation, path in _MODEL_FACETS:
            facet_b, facet_a = before.get(key, {}), after.get(key, {})
            for name in sorted(set(facet_b) | set(facet_a)):
                if facet_b.get(name) == facet_a.get(name):
                    continue
                change = "added" if name not in facet_b else "removed" if name not in facet_a else "changed"
                message = f"{model}: {key} {name} {change}: {facet_b.get(name)!r} -> {facet_a.get(name)!r}"
                out.append(Finding(check, message, operation, path=path.format(name), model=model, kind="drift"))
    return out


# -- baseline -----------------------------------------------------------------------------------


def load_baseline(path: Path) -> list[str]:
    raw = json.loads(path.read_text())
    return [str(k) for k in raw.get("accepted", [])]


def write_baseline(path: Path, findings: list[Finding]) -> None:
    keys = sorted({f.key for f in findings})
    notes = {f.key: f.message for f in findings}
    path.write_text(json.dumps({"format": BASELINE_FORMAT, "accepted": keys, "notes": notes}, indent=2) + "\n")


# -- the vendor's published OpenAPI document ---------------------------------------------------------

_METHODS = ("get", "put", "post", "delete", "patch")


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """``mockserver.spec.resolve``, tolerant: a vendor document's broken or remote ``$ref`` reads as empty."""
    try:
        return resolve(doc, node)
    except SpecError:
        return {}


def _full_paths(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, absolute path) -> operation; the server's base path is part of the path."""
    servers = doc.get("servers") or [{"url": ""}]
    prefix = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in (doc.get("paths") or {}).items():
        for method in _METHODS:
            if isinstance(item, dict) and isinstance(item.get(method), dict):
                out[(method.upper(), prefix + path)] = item[method]
    return out


def _merged_properties(doc: dict[str, Any], schema: Any, depth: int = 0) -> tuple[dict[str, Any], set[str]]:
    schema = _resolve(doc, schema)
    props: dict[str, Any] = {}
    required: set[str] = set()
    if not isinstance(schema, dict) or depth > 8:
        return props, required
    props.update(schema.get("properties") or {})
    required.update(schema.get("required") or [])
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            p, r = _merged_properties(doc, sub, depth + 1)
            for name, value in p.items():
                props.setdefault(name, value)
            if key == "allOf":
                required |= r
    return props, required


def _types(doc: dict[str, Any], schema: Any) -> set[str]:
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return set()
    value = schema.get("type")
    out = set(value) if isinstance(value, list) else ({value} if isinstance(value, str) else set())
    if schema.get("nullable"):
        out.add("null")
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            out |= _types(doc, sub)
    if "integer" in out and "number" in out:
        out.discard("integer")
    return out


def _body_schemas(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    body = _resolve(doc, op.get("requestBody") or {})
    return {m: c.get("schema") for m, c in (body.get("content") or {}).items() if isinstance(c, dict)}


def _success_schema(doc: dict[str, Any], op: dict[str, Any]) -> Any:
    for status, response in sorted((op.get("responses") or {}).items()):
        if str(status).startswith("2"):
            content = _resolve(doc, response).get("content") or {}
            media: Any = content.get("application/json") or next(iter(content.values()), {})
            return media.get("schema") if isinstance(media, dict) else None
    return None


def compare_specs(ours: dict[str, Any], vendor: dict[str, Any]) -> list[Finding]:
    """Where the vendor's document and ours disagree, for the operations both describe."""
    out: list[Finding] = []
    mine, theirs = _full_paths(ours), _full_paths(vendor)
    for key in sorted(set(mine) & set(theirs)):
        op, their_op = mine[key], theirs[key]
        op_id = str(op.get("operationId") or f"{key[0]} {key[1]}")
        label = f"{key[0]} {key[1]}"
        statuses_m = {s for s in (op.get("responses") or {}) if str(s)[0].isdigit()}
        statuses_t = {s for s in (their_op.get("responses") or {}) if str(s)[0].isdigit()}
        for status in sorted(statuses_t - statuses_m):
            out.append(
                Finding(
                    "vendor_status_only_in_vendor",
                    f"{label}: vendor documents {status}, we do not",
                    op_id,
                    int(status),
                    kind="drift",
                )
            )
        for status in sorted(statuses_m - statuses_t):
            out.append(
                Finding(
                    "vendor_status_only_in_ours",
                    f"{label}: we document {status}, the vendor does not",
                    op_id,
                    int(status),
                    kind="drift",
                )
            )
        bodies_m, bodies_t = _body_schemas(ours, op), _body_schemas(vendor, their_op)
        for media in sorted(set(bodies_m) ^ set(bodies_t)):
            side = "vendor" if media in bodies_t else "ours"
            out.append(
                Finding(
                    f"vendor_media_type_only_in_{side}",
                    f"{label}: request {media} only in {side}",
                    op_id,
                    path=f"requestBody.{media}",
                    kind="drift",
                )
            )
        for media in sorted(set(bodies_m) & set(bodies_t)):
            out += _compare_schema(
                ours, vendor, bodies_m[media], bodies_t[media], op_id, label, f"requestBody.{media}", request=True
            )
        out += _compare_schema(
            ours,
            vendor,
            _success_schema(ours, op),
            _success_schema(vendor, their_op),
            op_id,
            label,
            "response.2xx",
            request=False,
        )
    return out


def _compare_schema(
    ours: dict[str, Any],
    vendor: dict[str, Any],
    mine: Any,
    theirs: Any,
    op_id: str,
    label: str,
    where: str,
    *,
    request: bool,
) -> list[Finding]:
    out: list[Finding] = []
    props_m, req_m = _merged_properties(ours, mine)
    props_t, req_t = _merged_properties(vendor, theirs)
    for name in sorted(set(props_t) - set(props_m)):
        out.append(
            Finding(
                "vendor_field_only_in_vendor",
                f"{label}: {where} property {name} is only in the vendor's document",
                op_id,
                path=f"{where}.{name}",
                kind="drift",
            )
        )
    for name in sorted(set(props_m) - set(props_t)):
        out.append(
            Finding(
                "vendor_field_only_in_ours",
                f"{label}: {where} property {name} is only in ours",
                op_id,
                path=f"{where}.{name}",
                kind="drift",
            )
        )
    for name in sorted(set(props_m) & set(props_t)):
        types_m, types_t = _types(ours, props_m[name]), _types(vendor, props_t[name])
        if types_m and types_t and types_m != types_t:
            out.append(
                Finding(
                    "vendor_type_differs",
                    f"{label}: {where}.{name} is {sorted(types_m)} in ours, {sorted(types_t)} in the vendor's",
                    op_id,
                    path=f"{where}.{name}",
                    kind="drift",
                )
            )
    if request:
        for name in sorted((req_m ^ req_t) & (set(props_m) | set(props_t))):
            side = "ours" if name in req_m else "the vendor's"
            out.append(
                Finding(
                    "vendor_required_differs",
                    f"{label}: {where}.{name} is required only in {side}",
                    op_id,
                    path=f"{where}.{name}",
                    kind="drift",
                )
            )
    return out


def load_document(location: str, client: Any = None) -> dict[str, Any]:
    """A JSON or YAML OpenAPI document from a path or an http(s) URL."""
    import yaml

    if location.startswith(("http://", "https://")):
        import httpx

        text = (client or httpx).get(location, timeout=60.0).text
    else:
        text = Path(location).read_text()
    try:
        data = json.loads(text)
    except ValueError:
        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{location} is not an OpenAPI document")
    return data
