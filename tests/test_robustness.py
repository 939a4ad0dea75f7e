"""Nothing a client sends can stall, crash or overcharge the mock (issue 10): decompression bombs and
pixel budgets, heavy work off the event loop, former 500s, refunds on every failure path."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from mockserver import Engine, MockConfig, MockRequest, create_app
from mockserver.app import deliver
from mockserver.state import CLOCK_MAX

from .conftest import AUTH, KEY, checked_app, checked_engine, data_url, decode_image, error_code, png_bytes

pytestmark = pytest.mark.anyio


def bomb_png(width: int = 8192, height: int = 8192) -> bytes:
    """A few KB that declare width x height pixels (a 1-bit image of one colour compresses to nothing)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


BOMB = bomb_png()


def app_client(config: MockConfig | None = None, engine: Engine | None = None) -> httpx.AsyncClient:
    app = create_app(engine=engine) if engine is not None else checked_app(config)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock.test")


# -- pixel budgets ----------------------------------------------------------------------------


def test_the_bomb_is_small_and_declares_67_megapixels() -> None:
    assert len(BOMB) < 16_384
    assert Image.open(io.BytesIO(BOMB)).size == (8192, 8192)


@pytest.mark.parametrize("route", ["edit upload", "edit data URL", "input_references", "generation data URL"])
async def test_a_bomb_is_refused_from_its_header_with_the_limit_in_the_message(route: str) -> None:
    async with app_client() as c:
        if route == "edit upload":
            r = await c.post(
                "/api/v1/images/edits",
                data={"prompt": "p"},
                files={"image": ("bomb.png", BOMB, "image/png")},
                headers=AUTH,
            )
        elif route == "edit data URL":
            r = await c.post("/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": data_url(BOMB)}, headers=AUTH)
        elif route == "input_references":
            body = {"model": "flux-kontext", "prompt": "p", "input_references": [data_url(BOMB)]}
            r = await c.post("/api/v1/images", json=body, headers=AUTH)
        else:
            body = {"model": "flux-kontext", "prompt": "p", "imageDataUrl": data_url(BOMB)}
            r = await c.post("/v1/images/generations", json=body, headers=AUTH)
        assert r.status_code == 413, r.text
        assert error_code(r.json()) == "image_input_too_large"
        assert "8192x8192" in r.text and str(MockConfig().max_input_pixels) in r.text
        balance = await c.get("/_mock/balances", headers={"x-mock-key": KEY})
    assert balance.json()["balance"] == 1000


async def test_the_route_preflight_bounds_each_side() -> None:
    """catalog.yaml routes.input_images.max_width: a 16385x8 strip is refused whatever the pixel budget."""
    strip = bomb_png(16_385, 8)
    config = MockConfig(max_input_pixels=10**9, max_request_pixels=10**9)
    async with app_client(config) as c:
        r = await c.post("/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": data_url(strip)}, headers=AUTH)
    assert r.status_code == 413 and error_code(r.json()) == "image_input_too_large"
    assert "16384x16384" in r.text


async def test_the_request_budget_sums_every_input_and_the_mask() -> None:
    config = MockConfig(max_input_pixels=10_000, max_request_pixels=15_000)
    square = png_bytes(100, 100)
    async with app_client(config) as c:
        one = await c.post("/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": data_url(square)}, headers=AUTH)
        two = await c.post(
            "/api/v1/images/edits",
            json={"prompt": "p", "imageDataUrls": [data_url(square), data_url(square)]},
            headers=AUTH,
        )
        big = await c.post(
            "/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": data_url(png_bytes(101, 100))}, headers=AUTH
        )
    assert one.status_code == 200, one.text
    assert two.status_code == 413 and error_code(two.json()) == "image_input_too_large"
    assert "20000 pixels" in two.text and "15000" in two.text
    assert big.status_code == 413 and "10000 pixels per input image" in big.text


async def test_pillows_own_bomb_guard_answers_413_not_500() -> None:
    """With the mock's budget raised past Pillow's, Pillow's DecompressionBombError still ends in a 4xx."""
    config = MockConfig(max_input_pixels=10**9, max_request_pixels=10**9)
    huge = bomb_png(16_384, 16_384)  # 268 MP: over twice Image.MAX_IMAGE_PIXELS
    async with app_client(config) as c:
        r = await c.post("/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": data_url(huge)}, headers=AUTH)
    assert r.status_code == 413 and error_code(r.json()) == "image_input_too_large"


def test_peak_memory_of_bombs_stays_under_400_mb() -> None:
    """In a fresh process: three bombs at once through the app, peak RSS (VmHWM) below 400 MB."""
    script = textwrap.dedent(
        """
        import asyncio, base64, io, json
        import httpx
        from PIL import Image
        from mockserver import create_app
        buf = io.BytesIO(); Image.new("1", (8192, 8192)).save(buf, "PNG", optimize=True); bomb = buf.getvalue()
        url = "data:image/png;base64," + base64.b64encode(bomb).decode()
        auth = {"Authorization": "Bearer k"}
        async def main():
            transport = httpx.ASGITransport(app=create_app())
            async with httpx.AsyncClient(transport=transport, base_url="http://m") as c:
                rs = await asyncio.gather(
                    c.post("/api/v1/images/edits", files={"image": ("b.png", bomb, "image/png")}, data={"prompt": "p"},
                           headers=auth),
                    c.post("/api/v1/images", json={"model": "flux-kontext", "prompt": "p", "input_references": [url]},
                           headers=auth),
                    c.post("/api/v1/images/edits", json={"prompt": "p", "imageDataUrl": url}, headers=auth),
                )
            return [r.status_code for r in rs]
        statuses = asyncio.run(main())
        # VmHWM: this process's own peak (ru_maxrss would carry the forking parent's over exec)
        status = open("/proc/self/status").read()
        peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
        print(json.dumps({"statuses": statuses, "maxrss_mb": peak}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [413, 413, 413]
    assert result["maxrss_mb"] < 400, result


# -- off the event loop -----------------------------------------------------------------------


async def test_a_catalog_is_answered_while_a_heavy_edit_is_being_processed() -> None:
    """The edit decodes, edits and encodes ~6 MP in a worker thread; the catalog answers before it ends.
    (Were the edit run on the event loop, the catalog could only be answered after it.)"""
    source = png_bytes(2500, 2500, (10, 200, 90))
    finished: list[str] = []
    async with app_client() as c:

        async def edit() -> None:
            r = await c.post(
                "/api/v1/images/edits",
                data={"prompt": "heavy", "model": "gpt-image-2"},
                files={"image": ("big.png", source, "image/png")},
                headers=AUTH,
            )
            assert r.status_code == 200, r.text
            assert decode_image(r.json()["data"][0]["b64_json"]).size == (2500, 2500)
            finished.append("edit")

        async def catalog() -> None:
            await anyio.sleep(0.05)  # the edit has been read and handed to a worker by now
            r = await c.get("/api/v1/images/models")
            assert r.status_code == 200
            finished.append("catalog")

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(edit)
                tg.start_soon(catalog)
    assert finished == ["catalog", "edit"]


async def test_repeated_cached_requests_still_answer_the_same() -> None:
    """The learned fast path (a fixed seed's cached image on the loop) answers exactly what the worker did."""
    body = {"prompt": "a lighthouse", "model": "hidream", "seed": 42}
    async with app_client() as c:
        answers = [(await c.post("/v1/images/generations", json=body, headers=AUTH)).json() for _ in range(3)]
        balance = (await c.get("/_mock/balances", headers={"x-mock-key": KEY})).json()["balance"]
    assert answers[0]["data"] == answers[1]["data"] == answers[2]["data"]
    assert balance == pytest.approx(1000 - 3 * answers[0]["cost"])


# -- every client input gets a documented 4xx ---------------------------------------------------

S = "\ud800"
FORMER_500S: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/v1/images/generations", {"prompt": S, "response_format": "url"}, 400, "invalid_json"),
    ("POST", "/v1/images/generations", {"prompt": "x" * 81 + S}, 400, "invalid_json"),
    ("POST", "/api/v1/images", {"model": S, "prompt": "x"}, 400, "invalid_json"),
    ("POST", "/v1/images/generations", {"model": S, "prompt": "x"}, 400, "invalid_json"),
    ("POST", "/v1/images/generations", {"size": S, "prompt": "x"}, 400, "invalid_json"),
    ("POST", "/api/check-midjourney-status", {"task_id": S}, 400, "invalid_json"),
    ("PUT", "/_mock/faults", {"latency": {S: {"base_ms": 1}}}, 400, "invalid_json"),
    ("POST", "/_mock/faults/queue", {"operation_id": S, "code": "server_error"}, 400, "invalid_json"),
    ("POST", "/_mock/clock", {"set": 1e300}, 400, "invalid_parameter_value"),
    ("POST", "/_mock/clock", {"advance": 1e300}, 400, "invalid_parameter_value"),
    ("POST", "/_mock/clock", {"advance": -1e12}, 400, "invalid_parameter_value"),
    ("POST", "/_mock/clock", {"set": 100, "advance": CLOCK_MAX}, 400, "invalid_parameter_value"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), FORMER_500S)
async def test_each_former_500_input_gets_its_4xx(
    method: str, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    engine = checked_engine()
    raw = json.dumps(body).encode()  # ensure_ascii: "\ud800" travels as the escape the stdlib reads back
    headers = {**AUTH, "x-api-key": KEY, "content-type": "application/json"}
    async with app_client(engine=engine) as c:
        clock_before = (await c.post("/_mock/clock", json={"set": 1_800_000_000, "frozen": True})).json()
        r = await c.request(method, path, content=raw, headers=headers)
        assert r.status_code == status, r.text
        assert error_code(r.json()) == code
        clock_after = (await c.get("/_mock/clock")).json()
        # an out-of-range clock value leaves the clock as it was (the offset follows the wall clock)
        assert (clock_after["now"], clock_after["frozen"]) == (clock_before["now"], True)
        r = await c.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers=AUTH)
    assert r.status_code == 200


async def test_a_boundary_over_256_bytes_is_an_invalid_multipart_body(client: httpx.AsyncClient) -> None:
    boundary = "b" * 300
    r = await client.post(
        "/api/v1/images/edits",
        content=f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--{boundary}--\r\n',
        headers={**AUTH, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and error_code(r.json()) == "invalid_multipart_body"


async def test_the_admin_api_addresses_a_key_by_header(client: httpx.AsyncClient) -> None:
    r = await client.put("/_mock/balances", json={"balance": 0.5}, headers={"x-mock-key": KEY})
    assert r.status_code == 200 and r.json()["balance"] == 0.5 and KEY not in r.text
    assert (await client.get("/_mock/balances", headers={"x-mock-key": KEY})).json()["balance"] == 0.5
    assert (await client.get(f"/_mock/balances/{KEY}")).json()["balance"] == 0.5  # the old form still works
    missing = await client.get("/_mock/balances")
    assert missing.status_code == 400 and error_code(missing.json()) == "missing_required_parameter"


# -- money --------------------------------------------------------------------------------------


def gen_request(**extra: Any) -> MockRequest:
    body = json.dumps({"prompt": "x", "model": "hidream", **extra}).encode()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    return MockRequest("POST", "/v1/images/generations", headers=headers, body=body)


async def test_an_error_raised_in_the_handler_after_the_charge_is_refunded_and_answers_500() -> None:
    engine = Engine(MockConfig(balance=Decimal("5")))

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("renderer broke")

    engine.renderer.render_b64_json = broken  # type: ignore[method-assign]
    async with app_client(engine=engine) as c:
        r = await c.post("/v1/images/generations", json={"prompt": "x", "model": "hidream"}, headers=AUTH)
    assert r.status_code == 500 and error_code(r.json()) == "server_error"
    assert engine.ledger.balance(KEY) == Decimal("5")


async def test_a_failed_send_refunds_and_a_sent_2xx_settles() -> None:
    engine = Engine(MockConfig(balance=Decimal("5")))
    response = engine.handle(gen_request(seed=1))
    assert response.status == 200 and response.charge is not None
    assert engine.ledger.balance(KEY) < Decimal("5")

    async def failing_send(message: Any) -> None:
        raise OSError("connection reset")

    with pytest.raises(OSError, match="reset"):
        await deliver(failing_send, response)
    assert response.charge.refunded and engine.ledger.balance(KEY) == Decimal("5")

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    ok = engine.handle(gen_request(seed=2))
    await deliver(send, ok)
    assert ok.charge is not None and not ok.charge.open and not ok.charge.refunded
    assert engine.ledger.balance(KEY) == Decimal("5") - ok.charge.cost


async def test_a_client_gone_during_the_latency_pays_nothing_and_gets_nothing() -> None:
    engine = Engine(MockConfig(balance=Decimal("5")))
    request = gen_request(seed=3)
    slow = {**_fields(request), "headers": {**request.headers, "prefer": "latency=5000"}}
    response = engine.handle(MockRequest(**slow))
    assert response.delay_ms == 5000 and response.charge is not None
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        await anyio.sleep(0.05)
        return {"type": "http.disconnect"}

    with anyio.fail_after(2):  # far less than the 5 s latency: the disconnect ends the wait
        await deliver(send, response, receive)
    assert sent == []
    assert response.charge.refunded and engine.ledger.balance(KEY) == Decimal("5")


def _fields(request: MockRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in MockRequest.__slots__}


async def test_the_x402_quote_charges_nothing() -> None:
    engine = Engine(MockConfig(balance=Decimal("5")))
    async with app_client(engine=engine) as c:
        r = await c.post("/v1/images/generations", json={"prompt": "x"}, headers={"x-x402": "true"})
    assert r.status_code == 402 and "payment" in r.json()
    assert engine.ledger.snapshot() == {}
    assert engine.journal.entries(limit=1)[0]["cost"] is None


async def test_a_response_that_fails_to_render_refunds(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(MockConfig(balance=Decimal("5")))

    def broken_dumps(*args: object, **kwargs: object) -> bytes:
        raise TypeError("cannot encode")

    monkeypatch.setattr("mockserver.engine.orjson.dumps", broken_dumps)
    with pytest.raises(TypeError):
        engine.handle(gen_request())
    monkeypatch.undo()
    assert engine.ledger.balance(KEY) == Decimal("5")


def test_b64_decoding_of_the_bomb_is_not_needed_to_refuse_it() -> None:
    """The refusal reads the header only: a bomb whose pixel data is garbage is refused the same way."""
    truncated = BOMB[:200]  # header and the start of the data: could never decode
    engine = checked_engine()
    body = json.dumps({"prompt": "p", "imageDataUrl": "data:image/png;base64," + base64.b64encode(truncated).decode()})
    r = engine.handle(
        MockRequest(
            "POST",
            "/api/v1/images/edits",
            headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
            body=body.encode(),
        )
    )
    assert r.status == 413 and r.error_code == "image_input_too_large"
