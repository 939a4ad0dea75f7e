"""The validating proxy: transparent in front of the faithful mock, loud in front of drifted ones;
record -> replay gives back identical bodies and images; no key in recordings, reports or output."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.proxy import ProxyApp, Recorder, printer
from mockserver import create_app
from mockserver.replay import ReplayApp
from mockserver.serving import serve
from tests.contracts_support.drift_apps import VARIANTS, Rewrite, Variant

pytestmark = pytest.mark.socket

KEY = "sk-proxy-SECRET-0123456789"
# the drifts the proxy must name from traffic alone (the rest need requests of the run's own: URL
# downloads, repeated seeds, the negative suite, catalog snapshots)
PROXY_KINDS = (
    "type changed (contract)",
    "field renamed (contract)",
    "error code changed (contract)",
    "error status changed (contract)",
    "error envelope changed",
    "broken image",
    "wrong pixel size",
    "wrong image format",
    "nImages ignored when n is sent",
    "balance does not drop",
)


def traffic(base_url: str) -> list[httpx.Response]:
    """What an application might send in a day, in miniature: catalogs, generations, edits, mistakes."""
    from PIL import Image

    buffer = __import__("io").BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 40)).save(buffer, format="PNG")
    png = buffer.getvalue()
    out: list[httpx.Response] = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
        out.append(client.get("/api/v1/images/models"))
        for model in ("hidream", "gpt-image-2"):
            out.append(client.get(f"/api/v1/images/models/{model}/endpoints"))
        out.append(client.get("/api/v1/image-models", params={"detailed": "true"}))
        gen = {"model": "hidream", "prompt": "a lighthouse", "seed": 7}
        out.append(client.post("/api/v1/images", json={**gen, "resolution": "1024x1024"}))
        out.append(client.post("/api/v1/images", json={**gen, "n": 1, "nImages": 2}))
        out.append(client.post("/v1/images/generations", json={**gen, "size": "1024x1024"}))
        out.append(
            client.post(
                "/api/v1/images/edits",
                data={"model": "gpt-image-2", "prompt": "add a hat"},
                files={"image": ("in.png", png, "image/png")},
            )
        )
        out.append(client.post("/api/v1/images", json={"model": "no-such-model", "prompt": "x"}))
        out.append(client.post("/api/v1/images", json={"prompt": "no model"}))
        out.append(
            client.post(
                "/api/generate-image", json={"model": "hidream"}, headers={"Authorization": "", "x-api-key": KEY}
            )
        )
    return out


def _through_proxy(upstream_app: Any, **kwargs: Any) -> tuple[ProxyApp, list[httpx.Response], list[str]]:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    with serve(upstream_app) as upstream:
        proxy = ProxyApp(upstream.base_url, on_violation=printer(Sink()), **kwargs)  # type: ignore[arg-type]
        with serve(proxy) as front:
            responses = traffic(front.base_url)
            assert proxy.wait_idle()
    return proxy, responses, lines


@pytest.fixture(scope="module")
def faithful_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProxyApp, list[httpx.Response], Path]:
    directory = tmp_path_factory.mktemp("recording")
    proxy, responses, _ = _through_proxy(create_app(api_keys=frozenset({KEY})), recorder=Recorder(directory))
    return proxy, responses, directory


def test_the_proxy_is_silent_and_transparent_in_front_of_the_faithful_mock(
    faithful_run: tuple[ProxyApp, list[httpx.Response], Path],
) -> None:
    proxy, responses, _ = faithful_run
    assert proxy.report()["violations"] == []
    assert proxy.exchanges == len(responses)
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 200, 200, 200, 404, 400, 400]
    images = json.loads(responses[5].content)["data"]
    assert len(images) == 2  # nImages beat n, through the proxy


def test_the_proxy_forwards_requests_unchanged_and_adds_nothing() -> None:
    seen: list[tuple[list[tuple[bytes, bytes]], bytes]] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((list(scope["headers"]), body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(echo) as upstream, serve(ProxyApp(upstream.base_url)) as front:
        headers = {"Authorization": f"Bearer {KEY}", "x-custom": "1", "user-agent": "my-app/1"}
        response = httpx.post(front.base_url + "/not/in/the/spec?q=1", content=b"\x00raw body", headers=headers)
    assert response.text == "ok"
    names = [k.decode().lower() for k, _ in seen[0][0]]
    sent = {k.decode().lower(): v.decode() for k, v in seen[0][0]}
    assert seen[0][1] == b"\x00raw body"
    assert sent["authorization"] == f"Bearer {KEY}" and sent["x-custom"] == "1" and sent["user-agent"] == "my-app/1"
    # exactly the client's end-to-end headers (Connection is hop-by-hop); Host names the upstream
    client_sent = [k.lower() for k in response.request.headers if k.lower() != "connection"]
    assert sorted(names) == sorted(client_sent)
    assert sent["host"] == upstream.base_url.split("//")[1]


@pytest.mark.parametrize("name", PROXY_KINDS)
def test_the_proxy_names_each_drift(name: str) -> None:
    variant: Variant = next(v for v in VARIANTS if v.name == name)
    # the variants wrap a mock keyed with contracts' MOCK_KEY; the proxy's traffic uses its own key
    proxy, _, lines = _through_proxy(_rekeyed(variant.build()))
    report = proxy.report()
    hits = [
        v
        for v in report["violations"]
        if v["check"] == variant.check
        and (variant.operation_id is None or v["operationId"] == variant.operation_id)
        and (variant.path is None or v["json_path"] == variant.path)
        and (variant.code is None or v["code"] == variant.code)
    ]
    assert hits, f"{name}: got {[v['key'] for v in report['violations']]}"
    assert all(v["operationId"] and v["check"] for v in report["violations"])
    assert any(variant.check in line for line in lines)  # printed live


def _rekeyed(rewrite: Rewrite) -> Rewrite:
    rewrite.app = create_app(api_keys=frozenset({KEY}))
    return rewrite


def test_record_then_replay_returns_identical_bodies_and_images(
    faithful_run: tuple[ProxyApp, list[httpx.Response], Path],
) -> None:
    _, responses, directory = faithful_run
    replay = ReplayApp(create_app(api_keys=frozenset({"another-key"})), directory, fallback="404")
    with serve(replay) as server:
        again = traffic(server.base_url)
    assert [r.status_code for r in again] == [r.status_code for r in responses]
    for before, after in zip(responses, again, strict=True):
        assert after.content == before.content
    generated = json.loads(again[4].content)["data"][0]["b64_json"]
    assert (
        hashlib.sha256(base64.b64decode(generated)).digest()
        == hashlib.sha256(base64.b64decode(json.loads(responses[4].content)["data"][0]["b64_json"])).digest()
    )
    with serve(replay) as server:
        missing = httpx.post(server.base_url + "/api/v1/images", json={"model": "hidream", "prompt": "never sent"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_recording"


def test_replay_falls_back_to_the_mock(faithful_run: tuple[ProxyApp, list[httpx.Response], Path]) -> None:
    _, _, directory = faithful_run
    with serve(ReplayApp(create_app(), directory)) as server:
        fresh = httpx.post(
            server.base_url + "/api/v1/images",
            json={"model": "hidream", "prompt": "never recorded"},
            headers={"Authorization": "Bearer any"},
        )
    assert fresh.status_code == 200 and fresh.json()["data"]


def test_the_key_is_in_no_recording_report_or_output(
    faithful_run: tuple[ProxyApp, list[httpx.Response], Path], tmp_path: Path
) -> None:
    proxy, _, directory = faithful_run
    files = list(directory.glob("*.json"))
    assert len(files) == proxy.exchanges
    for path in files:
        text = path.read_text()
        assert KEY not in text and "authorization" not in text.lower() and "x-api-key" not in text.lower()
    hashed = tmp_path / "hashed"
    drifted = _rekeyed(next(v for v in VARIANTS if v.name == "wrong image format").build())
    noisy, _, lines = _through_proxy(drifted, recorder=Recorder(hashed, images="hash"))
    assert noisy.report()["violations"]
    assert KEY not in json.dumps(noisy.report()) and not any(KEY in line for line in lines)
    recorded = [json.loads(p.read_text()) for p in hashed.glob("*.json")]
    generated = [r for r in recorded if r["operation_id"] == "imagesGenerate" and r["response"]["status"] == 200]
    assert generated and '"b64_json": "sha256:' in generated[0]["response"]["body"]["text"]


def test_the_proxy_command_is_reached_through_nanogpt_mock(tmp_path: Path) -> None:
    """`nanogpt-mock proxy` resolves contracts.proxy lazily; bad flags are one line and exit 2."""
    run = subprocess.run(
        [sys.executable, "-m", "mockserver", "proxy", "--upstream", "ftp://x"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["nanogpt-mock proxy: --upstream 'ftp://x' is not an http(s) base URL"]
    run = subprocess.run([sys.executable, "-m", "mockserver", "proxy"], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "--upstream" in run.stderr


def test_contract_diff_compares_a_recording_with_a_snapshot(
    faithful_run: tuple[ProxyApp, list[httpx.Response], Path], tmp_path: Path
) -> None:
    from contracts import cli
    from tests.contracts_support.runs import run_app

    _, _, directory = faithful_run
    snap = tmp_path / "snap.json"
    _result, snapshot = run_app(create_app(api_keys=frozenset({"sk-nanogpt-contract-mock"})))
    snap.write_text(json.dumps(snapshot))
    report = tmp_path / "drift.json"
    args = ["diff", "--recording", str(directory), "--snapshot", str(snap), "-q", "--json", str(report)]
    assert cli.main(args) == cli.EXIT_OK, json.loads(report.read_text())["drift"]
    # a recording of a drifted upstream shows up as drift against the same snapshot
    drifted_dir = tmp_path / "drifted"
    renamed = _rekeyed(next(v for v in VARIANTS if v.name == "field renamed (drift: added)").build())
    _through_proxy(renamed, recorder=Recorder(drifted_dir))
    args = ["diff", "--recording", str(drifted_dir), "--snapshot", str(snap), "-q", "--json", str(report)]
    assert cli.main(args) == cli.EXIT_FAILED
    drift = {(d["check"], d.get("path")) for d in json.loads(report.read_text())["drift"]}
    assert ("field_added", "$.remaining_balance") in drift  # (absence is not evidence in partial traffic)
