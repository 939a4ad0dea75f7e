"""Auth policy: a mock that accepts any key is green and says why; a run that expects keys still fails without them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import cli
from mockserver import create_app
from mockserver.serving import serve
from tests.contracts_support.drift_apps import Rewrite

pytestmark = pytest.mark.socket

FAST = ["--examples", "3", "--domain-examples", "2", "-q"]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOGPT_API_KEY", "sk-any-key-will-do")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _claims_listed_keys(path: str, status: int, body: Any) -> tuple[int, Any]:
    """The admin API says only listed keys are accepted, but the mock behind it accepts any key."""
    if path == "/_mock/config" and isinstance(body, dict):
        body["auth_policy"] = "listed_keys"
    return status, body


def test_the_admin_api_states_the_auth_policy() -> None:
    with serve(create_app()) as open_mock, serve(create_app(api_keys=frozenset({"k1"}))) as keyed:
        assert httpx.get(open_mock.base_url + "/_mock/config").json() == {"auth_policy": "any_key"}
        assert httpx.get(keyed.base_url + "/_mock/config").json() == {"auth_policy": "listed_keys"}


def test_a_default_config_socket_mock_passes_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    with serve(create_app()) as server:
        code = cli.main(["run", "--base-url", server.base_url, *FAST, "--json", str(report)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    data = json.loads(report.read_text())
    assert data["target"]["auth_policy"] == "any_key"
    skipped = [c for c in data["cases"] if c["status"] == "skipped" and "accepts any key" in (c["note"] or "")]
    assert skipped and all("invalid_api_key" in c["name"] for c in skipped)
    assert "accepts any key" in out.splitlines()[-1]


def test_a_mock_that_does_not_enforce_keys_fails_a_keyed_run(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    app = Rewrite(create_app(), response=_claims_listed_keys)
    with serve(app) as server:
        args = ["run", "--base-url", server.base_url, *FAST, "--operations", "imagesGenerate", "--json", str(report)]
        code = cli.main(args)
    assert code == cli.EXIT_FAILED
    data = json.loads(report.read_text())
    failed = {(c["phase"], f["check"], f.get("code")) for c in data["cases"] for f in c["findings"]}
    assert ("negative", "negative_expected_code", "invalid_api_key") in failed
    assert any(check == "ignored_auth" for _, check, _ in failed)


def test_a_mock_whose_admin_api_is_hidden_is_held_to_live_rules(tmp_path: Path) -> None:
    """Without the admin API nothing says keys are optional: the invalid-key probes run and fail."""

    def hide_admin(path: str, status: int, raw: bytes) -> tuple[int, bytes]:
        return (404, b"{}") if path.startswith("/_mock/") else (status, raw)

    report = tmp_path / "r.json"
    with serve(Rewrite(create_app(), raw_response=hide_admin)) as server:
        args = ["run", "--base-url", server.base_url, *FAST, "--phases", "negative", "--json", str(report)]
        args += ["--operations", "imagesGenerate"]
        assert cli.main(args) == cli.EXIT_FAILED
    data = json.loads(report.read_text())
    assert data["target"]["auth_policy"] == "enforced"
    assert any(f.get("code") == "invalid_api_key" for c in data["cases"] for f in c["findings"])


def test_an_unreachable_target_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(create_app()) as server:
        dead = server.base_url
    assert cli.main(["run", "--base-url", dead, *FAST]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nanogpt-contract: cannot reach") and "Traceback" not in err[0]
