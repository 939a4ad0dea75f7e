"""`nanogpt-mock` / `python -m mockserver` as a user starts them: flags, environment, a real socket,
and every way to start it wrong (one line on stderr, exit 2, no traceback)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from contracts import cli as contract_cli
from contracts.runner import PHASES
from mockserver import cli
from mockserver.catalog import DEFAULT_CATALOG, catalog_problems
from mockserver.cli import build_parser
from mockserver.spec import load_yaml

pytestmark = pytest.mark.socket


BANNER = re.compile(r"^nanogpt-mock: serving the NanoGPT image API on (http://127\.0\.0\.1:(\d+)) ")


@contextmanager
def running(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m mockserver --port 0``: the first line on stderr names the port really bound."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--log-level", "warning", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        found = BANNER.match(first)
        assert found, first + process.stdout.read().decode()
        base = found[1]
        assert int(found[2]) > 0 and f"(OpenAI SDK base_url: {base}/api/v1)" in first
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/api/v1/images/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "the mock did not start"
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def test_help_explains_every_option() -> None:
    text = build_parser().format_help()
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--balance",
        "--catalog",
        "--url-ttl",
        "--signing-secret",
        "--presign-failure",
        "--fault-profile",
        "--admin-token",
        "--log-level",
    ):
        assert flag in text
    assert "NANOGPT_MOCK_BALANCE" in text


def test_module_serves_with_flags() -> None:
    with running(["--api-key", "sk-only", "--url-ttl", "5"]) as base, httpx.Client(base_url=base) as client:
        assert (
            client.post("/v1/images/generations", json={"prompt": "x"}, headers={"x-api-key": "sk-no"}).status_code
            == 401
        )
        r = client.post(
            "/v1/images/generations", json={"prompt": "x", "response_format": "url"}, headers={"x-api-key": "sk-only"}
        )
        assert r.status_code == 200
        assert client.get(r.json()["data"][0]["url"]).status_code == 200
        client.post("/_mock/clock", json={"advance": 6})
        assert client.get(r.json()["data"][0]["url"]).status_code == 410


def test_environment_variables_configure_it() -> None:
    env = {"NANOGPT_MOCK_BALANCE": "0", "NANOGPT_MOCK_ADMIN_TOKEN": "adm"}
    with running([], env) as base, httpx.Client(base_url=base) as client:
        assert (
            client.post("/v1/images/generations", json={"prompt": "x"}, headers={"x-api-key": "k"}).status_code == 402
        )
        assert client.get("/_mock/journal").status_code == 401
        assert client.get("/_mock/journal", headers={"x-mock-admin-token": "adm"}).status_code == 200


def test_port_zero_announces_the_port_it_bound() -> None:
    with running([]) as base:
        assert httpx.get(base + "/api/v1/images/models").status_code == 200


# -- starting it wrong: exactly one line on stderr, exit 2, no traceback --------------------------------
def _fails(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    for name in [n for n in os.environ if n.startswith(cli.ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code: int | str | None
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == cli.EXIT_USAGE, captured
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err and "serving" not in captured.err
    assert lines[0].startswith("nanogpt-mock: ")
    return lines[0]


BAD_CATALOG = """\
defaults: {created: 1760000000}
models:
  - id: no-price
    name: No Price
    owned_by: x
    default_size: 1024x1024
  - name: Nameless
    sizes: [big]
    default_size: 1024x1024
    price_usd: free
"""


@pytest.mark.parametrize(
    ("argv", "env", "files", "expected"),
    [
        (["--port", "70000"], {}, {}, ["--port '70000' is not a port"]),
        (["--port", "-1"], {}, {}, ["--port '-1' is not a port"]),
        (["--bogus-flag"], {}, {}, ["unrecognized arguments: --bogus-flag"]),
        (["--port"], {}, {}, ["--port: expected one argument"]),
        ([], {"NANOGPT_MOCK_PORT": "xyz"}, {}, ["NANOGPT_MOCK_PORT='xyz' is not a port"]),
        ([], {"NANOGPT_MOCK_BALANCE": "lots"}, {}, ["NANOGPT_MOCK_BALANCE='lots' is not a number"]),
        (
            ["--url-ttl", "0", "--log-level", "loud"],
            {"NANOGPT_MOCK_PORT": "xyz", "NANOGPT_MOCK_BALANCE": "lots", "NANOGPT_MOCK_PRESIGN_FAILURE": "maybe"},
            {},
            ["NANOGPT_MOCK_PORT='xyz'", "NANOGPT_MOCK_BALANCE='lots'", "--url-ttl '0'", "--log-level 'loud'", "maybe"],
        ),
        (["--balance", "-5", "--rate-limit-rps", "fast"], {}, {}, ["--balance '-5'", "--rate-limit-rps 'fast'"]),
        ([], {"NANOGPT_MOCK_DAILY_REQUEST_LIMIT": "1.5"}, {}, ["NANOGPT_MOCK_DAILY_REQUEST_LIMIT='1.5'"]),
        (
            ["--header-timeout", "0", "--worker-threads", "two"],
            {"NANOGPT_MOCK_MAX_CONNECTIONS": "many"},
            {},
            ["--header-timeout '0' is not a positive number", "--worker-threads 'two'", "MAX_CONNECTIONS='many'"],
        ),
        (["--public-base-url", "mock.local"], {}, {}, ["--public-base-url 'mock.local' is not an http(s)"]),
        (["--catalog", "{tmp}/missing.yaml"], {}, {}, ["--catalog", "missing.yaml' does not exist"]),
        (
            ["--catalog", "{tmp}/catalog.yaml"],
            {},
            {"catalog.yaml": BAD_CATALOG},
            [
                "models[0] (no-price): missing price_usd",
                "models[1]: missing id, owned_by",
                "sizes entry 'big' is not a WxH size",
                "price_usd 'free' is not a non-negative number",
                "routes (built in) name edit_default_model 'gpt-image-2', which this catalog does not hold",
            ],
        ),
        (
            ["--catalog", "{tmp}/catalog.yaml"],
            {},
            {"catalog.yaml": "models:\n  - id: [unclosed\n"},
            ["catalog.yaml is not valid YAML at line 3"],
        ),
        (["--catalog", "{tmp}/catalog.yaml"], {}, {"catalog.yaml": "- just a list\n"}, ["not a mapping"]),
        (
            ["--catalog", "{tmp}/catalog.yaml"],
            {},
            {"catalog.yaml": BAD_CATALOG + "routes: {midjourney_model: mj, input_images: {min_width: wide}}\n"},
            [
                "routes: missing edit_default_model, data_url_max_bytes, input_images.min_height",
                "input_images.min_width 'wide' is not a whole number",
                "midjourney_model 'mj' is not a model of this catalog",
                "missing price_usd",
            ],
        ),
        (["--catalog", "{tmp}/catalog.yaml"], {}, {"catalog.yaml": "models: []\n"}, ["'models' is missing, empty"]),
        (["--fault-profile", "{tmp}/none.yaml"], {}, {}, ["--fault-profile", "none.yaml' does not exist"]),
        (
            [],
            {"NANOGPT_MOCK_FAULT_PROFILE": "{tmp}/faults.yaml"},
            {"faults.yaml": "error_rate: 7\nlatency: 3\n"},
            ["faults.yaml: ", "error_rate: 7 is greater than the maximum of 1", "latency: 3 is not of type"],
        ),
        (["--fault-profile", "{tmp}/faults.yaml"], {}, {"faults.yaml": "seed: [1\n"}, ["is not valid YAML"]),
        (
            ["--port", "99999", "--catalog", "{tmp}/catalog.yaml", "--fault-profile", "{tmp}/faults.yaml"],
            {},
            {"catalog.yaml": BAD_CATALOG, "faults.yaml": "- 1\n"},
            ["--port '99999'", "missing price_usd", "faults.yaml is not a mapping"],
        ),
    ],
)
def test_every_problem_in_one_line(
    argv: list[str],
    env: dict[str, str],
    files: dict[str, str],
    expected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    line = _fails(
        [a.replace("{tmp}", str(tmp_path)) for a in argv],
        {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()},
        capsys,
        monkeypatch,
    )
    for fragment in expected:
        assert fragment in line, (fragment, line)


def test_the_bundled_catalog_has_no_problems() -> None:
    assert catalog_problems(load_yaml(DEFAULT_CATALOG)) == []


def test_catalog_check_tolerates_fields_it_does_not_know() -> None:
    raw = load_yaml(DEFAULT_CATALOG)
    raw["models"][0]["video_support"] = {"anything": ["goes"]}
    raw["future_top_level"] = 1
    assert catalog_problems(raw) == []


def test_a_port_in_use_is_one_line_and_no_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mockserver", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == cli.EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"nanogpt-mock: cannot listen on 127.0.0.1:{port}: the port is already in use"
    ]


def test_help_documents_the_exit_codes() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "exit codes: 0 stopped normally" in text and "2 a bad flag, environment value" in text


# -- nanogpt-contract: the same promise ---------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--phases", "bogus"], ["--phases 'bogus': unknown bogus; choose from " + ",".join(PHASES)]),
        (["run", "--phases", "schema,nope,negative,alsonot"], ["unknown nope, alsonot"]),
        (["run", "--base-url", "http://127.0.0.1:{closed}"], ["cannot reach http://127.0.0.1:{closed}"]),
        (["run", "--base-url", "ftp://example"], ["--base-url 'ftp://example' is not an http(s)://host URL"]),
        (["run", "--examples", "many"], ["argument --examples: invalid int value: 'many'"]),
        (
            ["run", "--budget-usd", "-1", "--max-requests", "0", "--junit", "{tmp}/no/such/dir/j.xml"],
            ["--budget-usd -1.0 must be at least 0", "--max-requests 0 must be at least 1", "does not exist"],
        ),
        (["run", "--operations", "imagesGenerate,noSuchOperation"], ["--operations: unknown noSuchOperation"]),
        (["diff", "--snapshot", "{tmp}/missing.json"], ["--snapshot", "missing.json does not exist"]),
        (["vendor-diff", "--vendor", "{tmp}/missing.json"], ["cannot read", "missing.json"]),
        (["explode"], ["invalid choice: 'explode'"]),
        ([], ["the following arguments are required: command"]),
    ],
)
def test_contract_cli_problems_in_one_line(
    argv: list[str],
    expected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NANOGPT_API_KEY", "sk-not-used")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    closed = str(_closed_port())
    code: int | str | None
    try:
        code = contract_cli.main([a.replace("{tmp}", str(tmp_path)).replace("{closed}", closed) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == contract_cli.EXIT_USAGE, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err and lines[0].startswith("nanogpt-contract")
    for fragment in expected:
        assert fragment.replace("{closed}", closed) in lines[0], (fragment, lines[0])


def test_contract_help_documents_the_exit_codes() -> None:
    text = " ".join(contract_cli.build_parser().format_help().split())
    assert "2 usage or target errors (a bad option value, no key, an unreachable base URL" in text
