"""Redacted snapshots of a target: catalogs, response shapes, error codes and statuses, image facts.

A shape is the set of JSON paths of a body with the JSON types seen there; keys of maps (per-model
parameter names, per-size prices) are folded into ``{*}`` when the spec declares the object a map.
Values are never stored, except catalog facts (model ids, supported parameters, prices) that
drift detection compares; images appear only as hash + format + size.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mockserver.spec import Spec

from .catalog import TargetCatalog

SNAPSHOT_FORMAT = "nanogpt-contract-snapshot/1"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-\[\]]*$")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass
class ShapeBook:
    """Collects shapes per ``operationId status [code]``."""

    spec: Spec
    shapes: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)

    def observe(self, operation_id: str, status: int, code: str | None, body: Any) -> None:
        key = f"{operation_id} {status}" + (f" {code}" if code else "")
        book = self.shapes.setdefault(key, {})
        schema = self._response_schema(operation_id, status)
        self._walk(body, "$", schema, book)
        if status >= 400 and code:
            self.errors.setdefault(operation_id, {})[code] = status

    def _response_schema(self, operation_id: str, status: int) -> Any:
        op = self.spec.by_id.get(operation_id)
        if op is None:
            return None
        raw = self.spec.document["paths"][op.path][op.method.lower()]["responses"]
        declared = self.spec.resolve(raw.get(str(status)) or raw.get("default") or {})
        media = (declared.get("content") or {}).get("application/json") or {}
        return media.get("schema")

    def _walk(self, value: Any, path: str, schema: Any, book: dict[str, set[str]]) -> None:
        book.setdefault(path, set()).add(json_type(value))
        if isinstance(value, dict):
            for key, child in value.items():
                child_schema, is_map = self._child(schema, key)
                name = "{*}" if is_map or not _IDENT.match(str(key)) else str(key)
                self._walk(child, f"{path}.{name}", child_schema, book)
        elif isinstance(value, list):
            items = self._items(schema)
            for child in value:
                self._walk(child, f"{path}[*]", items, book)

    def _branches(self, schema: Any) -> list[dict[str, Any]]:
        schema = self.spec.resolve(schema)
        if not isinstance(schema, dict):
            return []
        out = [schema]
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(key, []) or []:
                out.extend(self._branches(sub))
        return out

    def _child(self, schema: Any, key: str) -> tuple[Any, bool]:
        declared_map = False
        for branch in self._branches(schema):
            props = branch.get("properties") or {}
            if key in props:
                return props[key], False
            if isinstance(branch.get("additionalProperties"), dict):
                declared_map = True
                child = branch["additionalProperties"]
        return (child if declared_map else None), declared_map

    def _items(self, schema: Any) -> Any:
        for branch in self._branches(schema):
            if "items" in branch:
                return branch["items"]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "responses": {k: {p: sorted(t) for p, t in sorted(v.items())} for k, v in sorted(self.shapes.items())},
            "errors": {k: dict(sorted(v.items())) for k, v in sorted(self.errors.items())},
        }


def catalog_facts(catalog: TargetCatalog) -> dict[str, Any]:
    """Per model: its supported parameters and its prices, as published."""
    models: dict[str, Any] = {}
    for model_id, model in sorted(catalog.models.items()):
        models[model_id] = {
            "supported_parameters": model.raw_params,
            "prices": dict(sorted(model.unit_prices().items())),
            "capabilities": model.capabilities,
        }
    return {"models": models}


def build_snapshot(
    target: dict[str, Any], catalog: TargetCatalog | None, shapes: ShapeBook, images: list[dict[str, Any]]
) -> dict[str, Any]:
    """The snapshot document (no key, no image bytes)."""
    seen = sorted({(i["operation_id"], i["format"], i["width"], i["height"]) for i in images})
    return {
        "format": SNAPSHOT_FORMAT,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": {k: v for k, v in target.items() if k in ("kind", "base_url", "mock")},
        "spec_version": str(shapes.spec.document.get("info", {}).get("version", "")),
        "catalog": catalog_facts(catalog) if catalog else {"models": {}},
        **shapes.to_dict(),
        "images": [{"operation_id": o, "format": f, "width": w, "height": h} for o, f, w, h in seen],
        "image_hashes": sorted({i["sha256"] for i in images})[:200],
    }


def snapshot_from_recording(directory: Path, spec: Spec) -> dict[str, Any]:
    """A snapshot built from the exchanges ``nanogpt-mock proxy --record`` stored (no request sent).

    It holds only what the recorded traffic showed; ``recording_view`` narrows a full snapshot to
    the same ground before the two are diffed.
    """
    from mockserver.replay import RECORDING_FORMAT, body_bytes
    from mockserver.routing import RouteMatch, Router

    from .catalog import catalog_from_bodies
    from .checks import ImageFacts, identify_code, image_facts, raw_code

    router = Router(spec.operations)
    shapes = ShapeBook(spec)
    bodies: dict[str, Any] = {"models": None, "endpoints": {}, "legacy": None}
    images: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        entry = json.loads(path.read_text())
        if not isinstance(entry, dict) or entry.get("format") != RECORDING_FORMAT:
            continue
        request, response = entry["request"], entry["response"]
        match = router.route(request["method"], request["path"])
        if not isinstance(match, RouteMatch):
            continue
        op, status = match.operation, int(response["status"])
        try:
            body = json.loads(body_bytes(response["body"]))
        except ValueError:
            continue
        code = (identify_code(op, status, body) or raw_code(body)) if status >= 400 else None
        shapes.observe(op.operation_id, status, code, body)
        if status == 200 and op.operation_id == "imagesListModels":
            bodies["models"] = body
        elif status == 200 and op.operation_id == "imagesListModelEndpoints":
            bodies["endpoints"][match.params.get("modelId", "")] = body  # prices known for these models only
        elif status == 200 and op.operation_id == "legacyListImageModels" and "detailed=true" in request["query"]:
            bodies["legacy"] = body
        for item in body.get("data") or [] if isinstance(body, dict) and status < 300 else []:
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str) and entry.get("images") == "keep":
                try:
                    facts: ImageFacts = image_facts(base64.b64decode(item["b64_json"]))
                except (ValueError, OSError):
                    continue
                images.append({"operation_id": op.operation_id, **facts.to_dict()})
    catalog = catalog_from_bodies(bodies["models"], bodies["endpoints"], bodies["legacy"]) if bodies["models"] else None
    if catalog is not None:  # without its /endpoints a model's prices would be read from another table
        catalog.models = {k: v for k, v in catalog.models.items() if k in bodies["endpoints"]}
    return build_snapshot({"kind": "recording", "base_url": str(directory), "mock": False}, catalog, shapes, images)


def recording_view(snapshot: dict[str, Any], recorded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both snapshots narrowed to the ground they share: what the traffic did not show is not drift.

    Responses and images are compared for the (operation, status[, code]) both saw, error codes for
    the operations both saw, catalog facts for the models whose ``/endpoints`` the traffic read.
    A recording is partial evidence of each shape, so callers ignore ``field_removed`` from it.
    """
    shared = set(snapshot.get("responses", {})) & set(recorded.get("responses", {}))
    ops = {key.split()[0] for key in shared}
    models = set(recorded.get("catalog", {}).get("models", {})) & set(snapshot.get("catalog", {}).get("models", {}))

    def narrow(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            **doc,
            "responses": {k: v for k, v in doc.get("responses", {}).items() if k in shared},
            "errors": {op: codes for op, codes in doc.get("errors", {}).items() if op in ops},
            "catalog": {"models": {m: v for m, v in doc.get("catalog", {}).get("models", {}).items() if m in models}},
            "images": [i for i in doc.get("images", []) if i["operation_id"] in ops],
        }

    narrowed_snapshot, narrowed_recording = narrow(snapshot), narrow(recorded)
    recorded_errors = recorded.get("errors", {})
    narrowed_snapshot["errors"] = {
        op: {c: s for c, s in codes.items() if c in recorded_errors.get(op, {})}
        for op, codes in narrowed_snapshot["errors"].items()
    }
    return narrowed_snapshot, narrowed_recording
