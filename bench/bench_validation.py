"""Micro-benchmark of request validation (and the in-process pipeline), beside a naive baseline.

Run: ``python bench/bench_validation.py``. Every case runs for a fixed time budget; prints the median and
p90 in microseconds per request.

- mock: ``validation.parse_body`` + ``validation.schema_error`` with the validator ``spec`` compiled once
  at start-up (jsonschema-rs), on a valid body and on an invalid one (``n`` out of range);
- naive: ``jsonschema.Draft202012Validator`` on the same schema, the spec served to it as a ``referencing``
  registry, compiled once, and compiled per call (what a hand-written mock typically does);
- pipeline: ``Engine.handle`` end to end (route, auth, validation, handler, JSON encoding) for a rejected
  request (``missing_model``), a valid generation with a fixed seed (the image comes from the cache) and
  one with a new seed per call (a fresh 1024x1024 PNG each time).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from mockserver.engine import Engine
from mockserver.messages import MockRequest
from mockserver.spec import Operation, load_spec
from mockserver.validation import parse_body, schema_error

BUDGET_S = 1.0  # per case
MIN_RUNS, MAX_RUNS = 20, 200_000
SPEC_URI = "urn:nanogpt-image-mock:openapi"
VALID = b'{"prompt":"a lighthouse","model":"hidream","size":"1024x1024","seed":42}'
INVALID = b'{"prompt":"a lighthouse","model":"hidream","size":"1024x1024","seed":42,"n":0}'
HEADERS = {"authorization": "Bearer k", "content-type": "application/json", "host": "127.0.0.1"}


def measure(fn: Callable[[int], object], budget_s: float) -> tuple[float, float, int]:
    """(median us, p90 us, runs); ``i`` varies per call."""
    for i in range(3):
        fn(1_000_000_000 + i)
    times: list[float] = []
    started = time.perf_counter()
    i = 0
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e6)
        i += 1
    return statistics.median(times), statistics.quantiles(times, n=10)[-1], len(times)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def naive_validator_factory(document: dict[str, Any], operation: Operation) -> Callable[[], Any]:
    """A ``jsonschema`` validator of the operation's JSON body, refs resolved through a registry of the spec."""
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(document))
    pointer = _pointer("paths", operation.path, operation.method.lower(), "requestBody")
    body = document["paths"][operation.path][operation.method.lower()]["requestBody"]
    ref = body.get("$ref", f"#/{pointer}")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"{SPEC_URI}{ref}/content/application~1json/schema",
    }
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER

    def build() -> Any:
        return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)

    return build


def collect(budget_s: float = BUDGET_S) -> Iterator[dict[str, Any]]:
    """One row per case: group, name, median/p90 microseconds, runs."""
    spec = load_spec()
    operation = spec.by_id["openaiGenerateImage"]
    media = operation.bodies["application/json"]
    build = naive_validator_factory(dict(spec.document), operation)
    naive_once = build()
    # the naive validator judges exactly as the mock's does on both bodies
    for raw in (VALID, INVALID):
        data = json.loads(raw)
        assert bool(list(naive_once.iter_errors(data))) == (schema_error(media.validator, data) is not None)

    def mock_valid(_: int) -> object:
        parsed = parse_body(operation, "application/json", VALID)
        return schema_error(media.validator, parsed.data)

    def mock_invalid(_: int) -> object:
        parsed = parse_body(operation, "application/json", INVALID)
        return schema_error(media.validator, parsed.data)

    def naive_valid_once(_: int) -> object:
        return list(naive_once.iter_errors(json.loads(VALID)))

    def naive_invalid_once(_: int) -> object:
        return list(naive_once.iter_errors(json.loads(INVALID)))

    def naive_valid_per_call(_: int) -> object:
        return list(build().iter_errors(json.loads(VALID)))

    engine = Engine()

    def engine_rejected(_: int) -> object:
        request = MockRequest("POST", "/api/v1/images", (), HEADERS, b'{"prompt":"x"}')
        response = engine.handle(request)
        assert response.status == 400 and response.error_code == "missing_model"
        return response

    def engine_fixed_seed(_: int) -> object:
        response = engine.handle(MockRequest("POST", "/v1/images/generations", (), HEADERS, VALID))
        assert response.status == 200
        return response

    def engine_new_seed(i: int) -> object:
        body = VALID.replace(b'"seed":42', b'"seed":%d' % (i + 7_000_000))
        response = engine.handle(MockRequest("POST", "/v1/images/generations", (), HEADERS, body))
        assert response.status == 200
        return response

    cases: list[tuple[str, str, Callable[[int], object]]] = [
        ("validation", "mock: parse_body + schema_error, valid body", mock_valid),
        ("validation", "naive: jsonschema compiled once, valid body", naive_valid_once),
        ("validation", "naive: jsonschema compiled per call, valid body", naive_valid_per_call),
        ("validation", "mock: parse_body + schema_error, invalid body", mock_invalid),
        ("validation", "naive: jsonschema compiled once, invalid body", naive_invalid_once),
        ("pipeline", "Engine.handle: rejected (missing_model)", engine_rejected),
        ("pipeline", "Engine.handle: 1024 PNG, fixed seed (cached)", engine_fixed_seed),
        ("pipeline", "Engine.handle: 1024 PNG, new seed per call", engine_new_seed),
    ]
    for group, name, fn in cases:
        # the new-seed case renders an image per call: fewer runs fit, that's fine
        median, p90, runs = measure(fn, budget_s)
        yield {"group": group, "case": name, "median_us": median, "p90_us": p90, "runs": runs}


def main() -> None:
    began = time.perf_counter()
    print(f"budget {BUDGET_S}s per case; times in microseconds per request\n")
    header = f"{'case':<52} {'median':>9} {'p90':>9} {'runs':>7}"
    print(header)
    print("-" * len(header))
    rows = []
    for row in collect():
        rows.append(row)
        print(f"{row['case']:<52} {row['median_us']:>9.1f} {row['p90_us']:>9.1f} {row['runs']:>7}")
    by = {r["case"]: r["median_us"] for r in rows}
    mock = by["mock: parse_body + schema_error, valid body"]
    print(
        f"\nvalid body: mock is {by['naive: jsonschema compiled once, valid body'] / mock:.1f}x faster than jsonschema "
        f"compiled once, {by['naive: jsonschema compiled per call, valid body'] / mock:.1f}x than compiled per call"
    )
    print(f"total {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
