"""Run the contract suite against an ASGI app in-process (loopback) and diff it with a snapshot."""

from __future__ import annotations

from typing import Any

from contracts.drift import diff_snapshots
from contracts.model import RunResult
from contracts.runner import Runner, RunOptions
from contracts.target import open_target

FAST = {"schema_examples": 4, "domain_examples": 3}


def run_app(app: Any, snapshot: dict[str, Any] | None = None, **options: Any) -> tuple[RunResult, dict[str, Any]]:
    with open_target(app=app) as target:
        runner = Runner(target, RunOptions(**{**FAST, **options}))
        result = runner.run()
        fresh = runner.snapshot()
    if snapshot is not None:
        result.drift = diff_snapshots(snapshot, fresh)
    return result, fresh
