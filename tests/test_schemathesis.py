"""schemathesis, with all its default checks (negative data rejection and ignored auth included),
over every operation of the spec against the mock on a real socket: zero failures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mockserver import MockConfig
from mockserver.serving import serve
from mockserver.spec import load_spec, without_mock_only

from .conftest import checked_app

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-schemathesis"
pytestmark = pytest.mark.socket


def st_run(
    spec: Path, base_url: str, *options: str, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """schemathesis' own CLI with the project's settings and the keyed mock's credentials."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            str(spec),
            "--url",
            base_url,
            "--header",
            f"Authorization: Bearer {KEY}",
            "--header",
            f"x-api-key: {KEY}",
            # one worker: concurrent hypothesis lambda parsing trips a CPython 3.11 AST race
            # ("SystemError: AST constructor recursion depth mismatch"); the run takes the same time
            "--workers",
            "1",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    # the generators explore NanoGPT's surface, not the mock's own Prefer control header
    document = tmp_path / "openapi.yaml"
    document.write_text(yaml.safe_dump(without_mock_only(load_spec().document), sort_keys=False))
    report = tmp_path / "junit.xml"
    with serve(checked_app(MockConfig(api_keys=frozenset({KEY})))) as server:
        result = st_run(
            document,
            server.base_url,
            "--max-examples",
            "25",
            # a fixed seed keeps CI reproducible
            "--seed",
            "2",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
            timeout=300,
        )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    count = len(load_spec().operations)  # every operation of the spec was selected and tested
    assert f"{count}/{count}" in result.stdout and f"Tested: {count}" in result.stdout, summary
    assert " failures" not in result.stdout.splitlines()[-1], summary
    assert report.read_text().count("<testcase") >= 10


def test_schemathesis_cli_with_every_check_and_phase_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``st run spec/openapi.yaml --checks all --phases examples,coverage,fuzzing,stateful`` over the spec
    as published (the mock-only Prefer header included) against a mock that accepts one key: 0 failures.

    The run explores ``Prefer: latency=<0..60000>``; so that it stays bounded, the simulated latency is
    waited out for at most 10 ms here (its parsing and validation run as always)."""
    from mockserver import app as app_module

    real_wait = app_module._wait_out

    async def short_wait(seconds: float, receive: object) -> bool:
        return await real_wait(min(seconds, 0.01), receive)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "_wait_out", short_wait)
    with serve(checked_app(MockConfig(api_keys=frozenset({KEY})))) as server:
        result = st_run(
            ROOT / "spec" / "openapi.yaml",
            server.base_url,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "10",
            "--seed",
            "3",
            timeout=600,
            cwd=tmp_path,
        )
    out = result.stdout
    summary = out[-6000:]
    assert f"Tested: {len(load_spec().operations)}" in out, summary
    assert "Network Error" not in out and "errored" not in out, summary
    # schemathesis.toml documents the one tuning (a malformed mock-only Prefer is a documented 400):
    # no failure is excused here.
    failures = re.findall(r"^- (ST\d+) .*$", out, re.MULTILINE)
    assert not failures and " failures" not in out.splitlines()[-1], summary
