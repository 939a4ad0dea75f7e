"""Testing controls: Prefer header, fault profile and queue, limits, clock, journal, admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from mockserver import MockConfig
from mockserver.cli import build_parser, resolve
from mockserver.controls import FaultProfile
from mockserver.serving import ServerThread, serve

from .conftest import AUTH, KEY, checked_app, checked_engine, error_code

pytestmark = pytest.mark.anyio
GEN = "/v1/images/generations"
MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


# -- Prefer ----------------------------------------------------------------------------------------


async def test_prefer_status_gives_first_documented_code_with_retry_after(client: httpx.AsyncClient) -> None:
    r = await client.post(GEN, json={"prompt": "x"}, headers={**AUTH, "Prefer": "code=429"})
    assert r.status_code == 429
    assert error_code(r.json()) == "rate_limit_exceeded"
    assert r.headers["retry-after"] == "1"


async def test_prefer_named_example_in_the_operations_envelope(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/images",
        json={"model": "hidream"},
        headers={**AUTH, "Prefer": "code=429, example=daily_rpd_limit_exceeded"},
    )
    assert r.status_code == 429
    body = r.json()
    assert body["code"] == "daily_rpd_limit_exceeded"  # the Image API envelope's top-level code
    assert int(r.headers["retry-after"]) > 1


@pytest.mark.parametrize(
    ("prefer", "status", "code"),
    [
        ("code=model_not_found", 404, "model_not_found"),
        ("code=402", 402, None),
        ("code=500", 500, "server_error"),
        ("code=401", 401, "missing_api_key"),
        ("code=413", 413, "image_input_too_large"),
    ],
)
async def test_prefer_any_documented_error(
    client: httpx.AsyncClient, prefer: str, status: int, code: str | None
) -> None:
    r = await client.post(GEN, json={"prompt": "x"}, headers={**AUTH, "Prefer": prefer})
    assert r.status_code == status
    assert error_code(r.json()) == code


@pytest.mark.parametrize(
    ("prefer", "fragment"),
    [
        ("code=418", "Documented statuses: 400, 401, 402, 404, 413, 429, 500, 503"),
        ("code=unsupported_stream", "Documented: "),
        ("colour=blue", "Valid directives: code="),
        ("latency=fast", "milliseconds"),
        ("presign=maybe", "only 'fail'"),
    ],
)
async def test_prefer_unknown_values_name_the_valid_ones(client: httpx.AsyncClient, prefer: str, fragment: str) -> None:
    r = await client.post(GEN, json={"prompt": "x"}, headers={**AUTH, "Prefer": prefer})
    assert r.status_code == 400
    assert error_code(r.json()) == "invalid_parameter_value"
    assert fragment in r.json()["error"]["message"]


async def test_prefer_latency_and_presign(engine, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    r = await client.post(
        GEN, json={"prompt": "x", "response_format": "url"}, headers={**AUTH, "Prefer": "latency=30, presign=fail"}
    )
    assert r.status_code == 200
    assert set(r.json()["data"][0]) == {"b64_json"}
    (entry,) = engine.journal.entries(path=GEN)
    assert entry["delay_ms"] == 30
    assert entry["fault"] == "prefer"


# -- fault profile ---------------------------------------------------------------------------------


def test_error_rate_is_seeded_and_replays() -> None:
    from mockserver import MockRequest

    profile = FaultProfile(seed=7, error_rate=0.5, error_codes=("server_error", "service_unavailable"))
    request = MockRequest(
        "POST",
        GEN,
        headers={"authorization": "Bearer k", "content-type": "application/json"},
        body=b'{"prompt":"x","model":"pruna-ai/p-image/text-to-image"}',
    )
    runs = []
    for _ in range(2):
        engine = checked_engine(MockConfig(fault_profile=profile))
        runs.append([engine.handle(request).status for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500, 503}


def test_latency_grows_with_pixels() -> None:
    profile = FaultProfile(latency={"*": {"base_ms": 10, "per_megapixel_ms": 100}})
    engine = checked_engine(MockConfig(fault_profile=profile))
    from mockserver import MockRequest

    def delay(body: dict[str, object]) -> float:
        r = engine.handle(
            MockRequest(
                "POST",
                "/api/v1/images",
                headers={"x-api-key": "k", "content-type": "application/json"},
                body=json.dumps(body).encode(),
            )
        )
        assert r.status == 200
        return r.delay_ms / 1000  # seconds

    small = delay({"model": "openai/gpt-image-2.5/flare/text-to-image", "resolution": "1k"})
    large = delay({"model": "openai/gpt-image-2.5/flare/text-to-image", "resolution": "4k"})
    assert small == pytest.approx(0.01 + 0.1 * 1024 * 1024 / 1e6)
    assert large > 10 * small


async def test_rate_limit_per_second_on_the_mock_clock(engine, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    engine.faults.set_profile(FaultProfile(rate_limit_rps=2))
    engine.clock.set(MIDNIGHT, frozen=True)
    statuses = [(await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    other_key = await client.post(GEN, json={"prompt": "x"}, headers={"Authorization": "Bearer other"})
    assert other_key.status_code == 200
    engine.clock.advance(1.0)
    assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 200


async def test_daily_request_limit_resets_at_next_utc_midnight(engine, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    engine.faults.set_profile(FaultProfile(daily_request_limit=2))
    engine.clock.set(MIDNIGHT - 60, frozen=True)  # 23:59:00 UTC
    for _ in range(2):
        assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 200
    refused = await client.post(GEN, json={"prompt": "x"}, headers=AUTH)
    assert refused.status_code == 429
    assert error_code(refused.json()) == "daily_rpd_limit_exceeded"
    assert refused.json()["error"]["message"] == "Daily request limit exceeded (2/2). Resets at midnight UTC."
    assert refused.headers["retry-after"] == "60"
    engine.clock.advance(59)
    assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 429
    engine.clock.advance(1)  # 00:00:00 UTC: a new day
    assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 200


async def test_daily_usd_limit(engine, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    engine.faults.set_profile(FaultProfile(daily_usd_limit=Decimal("0.1")))
    body = {"prompt": "x", "model": "recraft-v3", "n": 2}  # 0.08 a request
    assert (await client.post(GEN, json=body, headers=AUTH)).status_code == 200
    refused = await client.post(GEN, json=body, headers=AUTH)
    assert refused.status_code == 429 and error_code(refused.json()) == "daily_usd_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    cheap = {"prompt": "x", "model": "pruna-ai/p-image/text-to-image"}  # 0.085 still fits
    assert (await client.post(GEN, json=cheap, headers=AUTH)).status_code == 200


# -- clock, journal, admin -------------------------------------------------------------------------


async def test_advanced_clock_expires_urls_through_the_admin_api(client: httpx.AsyncClient) -> None:
    r = await client.post(GEN, json={"prompt": "x", "response_format": "url"}, headers=AUTH)
    url = r.json()["data"][0]["url"]
    assert (await client.get(url)).status_code == 200
    moved = await client.post("/_mock/clock", json={"advance": 7200})
    assert moved.status_code == 200 and moved.json()["offset"] >= 7199
    assert (await client.get(url)).status_code == 410


async def test_journal_filters_and_never_holds_a_key(client: httpx.AsyncClient) -> None:
    await client.post(GEN, json={"prompt": "x", "model": "hidream"}, headers=AUTH)
    await client.post(GEN, json={"prompt": "x"}, headers={"x-api-key": "sk-other-secret"})
    await client.post(GEN, json={"model": "hidream"}, headers=AUTH)
    await client.get("/api/v1/images/models")
    everything = await client.get("/_mock/journal")
    assert everything.json()["count"] == 4
    assert KEY not in everything.text and "sk-other-secret" not in everything.text
    mine = (await client.get("/_mock/journal", params={"key": KEY})).json()["data"]
    assert [e["status"] for e in mine] == [200, 400]
    assert mine[0]["model"] == "hidream" and mine[0]["cost"] == pytest.approx(0.0066)
    bad = (await client.get("/_mock/journal", params={"status": 400})).json()["data"]
    assert [e["error_code"] for e in bad] == ["missing_required_parameter"]
    catalog = (await client.get("/_mock/journal", params={"path": "/api/v1/images/models"})).json()["data"]
    assert [e["operation_id"] for e in catalog] == ["imagesListModels"]
    assert (await client.delete("/_mock/journal")).json() == {"ok": True}
    assert (await client.get("/_mock/journal")).json()["count"] == 0


async def test_admin_balance_and_reset(client: httpx.AsyncClient) -> None:
    r = await client.put(f"/_mock/balances/{KEY}", json={"balance": 0.01})
    assert r.json()["balance"] == 0.01 and KEY not in r.text
    assert (await client.post(GEN, json={"prompt": "x", "model": "recraft-v3"}, headers=AUTH)).status_code == 402
    assert (await client.get(f"/_mock/balances/{KEY}")).json()["balance"] == 0.01
    bad = await client.put(f"/_mock/balances/{KEY}", json={"balance": -1})
    assert bad.status_code == 400 and error_code(bad.json()) == "invalid_parameter_value"
    assert (await client.post("/_mock/reset")).json() == {"ok": True}
    assert (await client.get(f"/_mock/balances/{KEY}")).json()["balance"] == 1000


async def test_admin_faults_runtime_change_and_queue(client: httpx.AsyncClient) -> None:
    r = await client.put("/_mock/faults", json={"error_rate": 1, "error_codes": ["service_unavailable"]})
    assert r.status_code == 200 and r.json()["profile"]["error_rate"] == 1
    assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 503
    await client.put("/_mock/faults", json={})
    q = await client.post(
        "/_mock/faults/queue", json={"code": "rate_limit_exceeded", "operation_id": "imagesGenerate", "count": 2}
    )
    assert q.json()["queue"] == [{"code": "rate_limit_exceeded", "operation_id": "imagesGenerate", "count": 2}]
    assert (await client.post(GEN, json={"prompt": "x"}, headers=AUTH)).status_code == 200  # other operation
    body = {"model": "hidream", "prompt": "x"}
    assert [(await client.post("/api/v1/images", json=body, headers=AUTH)).status_code for _ in range(3)] == [
        429,
        429,
        200,
    ]
    bad = await client.post("/_mock/faults/queue", json={"code": "no_such_code"})
    assert bad.status_code == 400 and "No operation documents" in bad.json()["error"]["message"]
    invalid = await client.put("/_mock/faults", json={"error_rate": 2})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "error_rate"


async def test_admin_token() -> None:
    app = checked_app(MockConfig(admin_token="t0ken"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        assert (await c.post("/_mock/reset")).status_code == 401
        assert (await c.post("/_mock/reset", headers={"x-mock-admin-token": "wrong"})).status_code == 401
        assert (await c.post("/_mock/reset", headers={"x-mock-admin-token": "t0ken"})).status_code == 200
        doc = await c.get("/_mock/openapi.yaml")
    assert yaml.safe_load(doc.text)["info"]["title"] == "nanogpt-mock admin API"


def test_fault_profile_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("seed: 3\nerror_rate: 0.1\nlatency:\n  '*': {base_ms: 100, per_megapixel_ms: 400, sigma: 0.3}\n")
    args = build_parser().parse_args(["--fault-profile", str(path), "--rate-limit-rps", "25"])
    settings, problems = resolve(args, {})
    assert settings is not None and problems == []
    profile = settings.fault_profile
    assert profile is not None and profile.rate_limit_rps == 25 and profile.seed == 3
    path.write_text("error_rate: lots\n")
    settings, problems = resolve(build_parser().parse_args(["--fault-profile", str(path)]), {})
    assert settings is None and len(problems) == 1 and "error_rate" in problems[0]


# -- the openai SDK's retry against a forced 429 ---------------------------------------------------


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with serve(checked_app(MockConfig())) as running:
        yield running


@pytest.mark.socket
def test_forced_429_makes_the_sdk_retry_and_succeed(server: ServerThread) -> None:
    with httpx.Client(base_url=server.base_url) as admin:
        admin.post("/_mock/faults/queue", json={"code": "rate_limit_exceeded", "count": 1})
        with openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=2) as client:
            result = client.images.generate(prompt="x", model="hidream")
        assert result.data is not None and result.data[0].b64_json
        journal = admin.get("/_mock/journal", params={"path": GEN}).json()["data"]
    assert [(e["status"], e["error_code"]) for e in journal] == [(429, "rate_limit_exceeded"), (200, None)]
    assert journal[0]["fault"] == "queue"


def test_admin_document_is_valid_openapi_31() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    from mockserver.admin import ADMIN_SPEC_PATH

    document = yaml.safe_load(ADMIN_SPEC_PATH.read_text())
    validate(document, cls=OpenAPIV31SpecValidator)
    operations = [op for item in document["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert all(op["operationId"].startswith("admin") for op in operations if "operationId" in op)
