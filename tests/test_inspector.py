"""The request inspector at /_mock/, in a real headless browser (Debian's chromium, driven over the
DevTools protocol): the journal newest first, its filters, thumbnails that really render (a screenshot
check), error codes and costs, and the controls as forms that change the mock's state."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from itertools import count
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.sync.client import ClientConnection, connect

from mockserver import Engine, MockConfig, create_app
from mockserver.serving import ServerThread, serve

from .conftest import checked_engine, open_image

pytestmark = pytest.mark.socket

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1000",
]
WAIT_S = 30.0  # an upper bound on waiting for the browser, never a verdict


def _chromium() -> str:
    """Debian's chromium; installed with apt-get when absent and possible (CI runs as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # the lock timeout lets test workers that ask at once wait for each other
        install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=900, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=900, check=False)
            subprocess.run(install, env=env, capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT_S:.0f} s for {what}")
        time.sleep(0.05)


class Browser:
    """One headless chromium page, driven over the DevTools protocol (no npm, no webdriver)."""

    def __init__(self, chromium: str, profile: str) -> None:
        port = _free_port()
        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def page_target() -> dict[str, Any] | None:
            assert self.process.poll() is None, "chromium exited"
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
            except httpx.HTTPError:
                return None
            return next((t for t in targets if t["type"] == "page"), None)

        target = _wait_for("chromium's DevTools endpoint", page_target)
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=WAIT_S)
        )
        self._ids = count(1)
        # every page load fetches its images again (an expired URL must show as expired)
        self.call("Network.enable")
        self.call("Network.setCacheDisabled", cacheDisabled=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=WAIT_S))
            if message.get("id") == call_id:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message["result"]
                return result

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        _wait_for(f"{url} to be ready", lambda: self.js("document.body && document.body.dataset.state") == "ready")
        self.images_settled()

    def images_settled(self) -> None:
        """Every thumbnail has loaded or failed (the page re-renders when the journal changes)."""
        _wait_for(
            "the thumbnails to load",
            lambda: self.js("[...document.querySelectorAll('img.thumb')].every(i => i.complete)"),
        )

    def screenshot(self) -> Image.Image:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def rows(self) -> list[dict[str, Any]]:
        return list(
            self.js(
                """[...document.querySelectorAll('#journal tbody tr')].map(r => ({
                    seq: Number(r.dataset.seq), status: Number(r.dataset.status), operation: r.dataset.operation,
                    code: r.querySelector('.error-code').textContent, cost: r.querySelector('.cost').textContent,
                    images: [...r.querySelectorAll('img.thumb')].map(i => ({src: i.src, width: i.naturalWidth}))}))"""
            )
        )

    def set_value(self, selector: str, value: str) -> None:
        self.js(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.value = {json.dumps(value)};"
            " el.dispatchEvent(new Event('input', {bubbles: true})); })()"
        )

    def submit(self, form: str, fields: dict[str, str] | None = None, button: str | None = None) -> None:
        for name, value in (fields or {}).items():
            self.set_value(f"#{form} [name={name}]", value)
        submitter = f"document.querySelector('#{form} button[value={button}]')" if button else "undefined"
        self.js(f"document.getElementById({json.dumps(form)}).requestSubmit({submitter})")

    def close(self) -> None:
        self._stack.close()
        self.process.terminate()
        self.process.wait(WAIT_S)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = _chromium()
    with tempfile.TemporaryDirectory(prefix="nanogpt-inspector-") as profile:
        opened = Browser(chromium, profile)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def mock() -> Iterator[tuple[Engine, str]]:
    engine = checked_engine(MockConfig())
    server = ServerThread(create_app(engine=engine)).start()
    try:
        yield engine, server.base_url
    finally:
        server.stop()


def _pixels(image: Image.Image) -> list[tuple[int, ...]]:
    """Pixels in row order (RGB triples, or 1-tuples for a mask)."""
    raw, bands = image.tobytes(), len(image.getbands())
    return [tuple(raw[i : i + bands]) for i in range(0, len(raw), bands)]


KEY_A, KEY_B = "sk-inspector-a", "sk-inspector-b"


def _traffic(base: str) -> list[Image.Image]:
    """Three generations' worth of requests; returns the images the two successful ones returned."""
    with httpx.Client(base_url=base, timeout=WAIT_S) as client:
        first = client.post(
            "/v1/images/generations",
            json={"prompt": "a cat", "model": "hidream", "n": 2, "seed": 3},
            headers={"Authorization": f"Bearer {KEY_A}"},
        )
        second = client.post(
            "/api/v1/images",
            json={"model": "gpt-image-2", "prompt": "a dog", "response_format": "url", "seed": 5},
            headers={"Authorization": f"Bearer {KEY_B}"},
        )
        missing = client.post(
            "/v1/images/generations", json={"prompt": "x", "model": "nope"}, headers={"x-api-key": KEY_A}
        )
        assert (first.status_code, second.status_code, missing.status_code) == (200, 200, 404)
        images = [open_image(base64.b64decode(d["b64_json"])) for d in first.json()["data"]]
        images.append(open_image(client.get(second.json()["data"][0]["url"]).content))
    return images


def test_the_page_is_static_self_contained_and_open_even_with_an_admin_token() -> None:
    with (
        serve(create_app(engine=checked_engine(MockConfig(admin_token="t0ken")))) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        page = client.get("/_mock/")
        alias = client.get("/_mock/inspector")
        assert client.get("/_mock/journal").status_code == 401  # the data stays behind the token
        assert client.post("/_mock/").status_code == 405
    assert page.status_code == alias.status_code == 200
    assert page.headers["content-type"].startswith("text/html") and page.content == alias.content
    text = page.text
    assert "<script>" in text and "<style>" in text
    assert "http://" not in text and "https://" not in text  # nothing from a CDN or anywhere else
    assert "<script src" not in text and 'rel="stylesheet"' not in text
    assert "x-mock-admin-token" in text


def test_journal_newest_first_with_filters_thumbnails_codes_and_costs(
    browser: Browser, mock: tuple[Engine, str]
) -> None:
    engine, base = mock
    _traffic(base)
    journal = {e["seq"]: e for e in engine.journal.entries()}
    browser.open(base + "/_mock/")
    rows = browser.rows()
    assert [r["seq"] for r in rows] == [3, 2, 1]  # newest first; the thumbnails' own downloads are hidden
    assert [r["status"] for r in rows] == [404, 200, 200]
    assert rows[0]["code"] == "model_not_found" and rows[0]["images"] == []
    assert rows[2]["cost"] == f"{journal[1]['cost']:.4f}" == "0.0132"
    for row in rows[1:]:
        assert [i["src"] for i in row["images"]] == journal[row["seq"]]["images"]
        assert all(i["width"] == 1024 for i in row["images"]), row  # decoded by the browser
    browser.set_value("#f-op", "imagesGenerate")
    assert [r["seq"] for r in browser.rows()] == [2]
    browser.set_value("#f-op", "")
    browser.set_value("#f-key", journal[1]["key_id"])
    assert [r["seq"] for r in browser.rows()] == [3, 1]
    browser.set_value("#f-key", "")
    browser.set_value("#f-status", "4xx")
    assert [r["seq"] for r in browser.rows()] == [3]
    browser.open(base + "/_mock/inspector?operation=openaiGenerateImage&status=2xx")
    assert [r["seq"] for r in browser.rows()] == [1]
    # live: a new request shows up without reloading
    browser.open(base + "/_mock/")
    httpx.post(base + "/api/v1/images/generations", json={"prompt": "y"}, headers={"x-api-key": KEY_B})
    _wait_for("the new request", lambda: browser.rows()[0]["operation"] == "openaiGenerateImageApi")


def test_thumbnails_render_in_a_screenshot(browser: Browser, mock: tuple[Engine, str]) -> None:
    engine, base = mock
    images = _traffic(base)
    browser.open(base + "/_mock/?status=2xx")
    shown = browser.screenshot()
    # the same view with every image URL expired: the thumbnails fail and leave the background
    engine.clock.advance(7200)
    browser.open(base + "/_mock/?status=2xx")
    _wait_for("the thumbnails to fail", lambda: browser.js("document.querySelectorAll('img.thumb.broken').length") == 3)
    blank = browser.screenshot()
    journal_area = (0, 60, 1045, 1000)  # below the header, left of the control panels (x >= 1054)
    a, b = _pixels(shown.crop(journal_area)), _pixels(blank.crop(journal_area))
    flags = [max(abs(x - y) for x, y in zip(p, q, strict=True)) > 30 for p, q in zip(a, b, strict=True)]
    # what three 64x64 thumbnails of these images should change: their pixels that are not near-white
    expected = [
        p for image in images for p in _pixels(image.convert("RGB").resize((64, 64))) if max(255 - c for c in p) > 30
    ]
    assert 0.9 * len(expected) <= sum(flags) <= 3 * 64 * 64, (sum(flags), len(expected))
    masked_blank = [q for q, m in zip(b, flags, strict=True) if m]
    assert min(min(p) for p in masked_blank) >= 240  # ... where the page is otherwise empty
    masked_shown = [p for p, m in zip(a, flags, strict=True) if m]
    for channel in range(3):  # the pixels shown are the images' own colours
        mean_shown = sum(p[channel] for p in masked_shown) / len(masked_shown)
        mean_expected = sum(p[channel] for p in expected) / len(expected)
        assert abs(mean_shown - mean_expected) < 30, (channel, mean_shown, mean_expected)


def test_controls_are_forms_that_change_the_mock(browser: Browser, mock: tuple[Engine, str]) -> None:
    engine, base = mock
    _traffic(base)
    browser.open(base + "/_mock/")
    browser.submit("form-clock-advance", {"advance": "7200"})
    _wait_for("the clock to move", lambda: engine.clock.offset >= 7199)
    browser.submit("form-clock-set", {"set": "2000000000"})
    _wait_for("the clock to be set and frozen", lambda: engine.clock.now() == 2_000_000_000 and engine.clock.frozen)
    browser.submit("form-balance", {"key": KEY_B, "balance": "5"}, button="set")
    _wait_for("the balance to be set", lambda: float(engine.ledger.balance(KEY_B)) == 5)
    browser.submit("form-balance", {"key": KEY_B}, button="get")
    _wait_for("the balance to be shown", lambda: browser.js("document.getElementById('balance-out').textContent"))
    assert browser.js("document.getElementById('balance-out').textContent").endswith(": $5")
    browser.submit("form-fault", {"code": "rate_limit_exceeded", "count": "2", "operation_id": "imagesGenerate"})
    _wait_for("the fault to be queued", lambda: engine.faults.queue_view())
    assert engine.faults.queue_view()[0]["code"] == "rate_limit_exceeded"
    assert engine.faults.queue_view()[0]["count"] == 2
    browser.submit("form-fault-clear")
    _wait_for("the queue to be cleared", lambda: not engine.faults.queue_view())
    browser.submit("form-fault", {"code": "no_such_code"})
    _wait_for("the refusal to show", lambda: "400" in browser.js("document.getElementById('message').textContent"))
    assert not engine.faults.queue_view()
    browser.submit("form-reset")
    _wait_for("the reset", lambda: engine.journal.entries() == [] and not engine.clock.frozen)
    _wait_for("the empty journal on the page", lambda: browser.rows() == [])
