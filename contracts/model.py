"""Plain result records shared by the runner, the reports and the drift tools (no schemathesis here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "skipped", "error"]


@dataclass(frozen=True)
class Finding:
    """One precise statement of non-conformance or drift: which check, where, and why.

    ``key`` is stable across runs (no messages, no values), so a baseline can accept it.
    """

    check: str
    message: str
    operation_id: str | None = None
    status: int | None = None
    path: str | None = None  # JSON path inside the body, when the finding is about a field
    code: str | None = None  # error code, when it is about an error
    model: str | None = None  # model id, when it is about a model
    kind: Literal["contract", "drift"] = "contract"

    @property
    def key(self) -> str:
        parts = [self.check, self.operation_id or "-", str(self.status or "-"), self.path or "-", self.code or "-"]
        parts.append(self.model or "-")
        return "|".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        out["key"] = self.key
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        names = ("check", "message", "operation_id", "status", "path", "code", "model", "kind")
        return cls(**{k: raw[k] for k in names if k in raw})


@dataclass
class CaseResult:
    """One reported test case (a group of requests with one verdict)."""

    phase: str  # schema | domain | negative | probe
    name: str
    operation_id: str | None
    status: Status = "passed"
    findings: list[Finding] = field(default_factory=list)
    requests: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    note: str | None = None

    def fail(self, finding: Finding) -> None:
        if finding not in self.findings:
            self.findings.append(finding)
        self.status = "failed"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


@dataclass
class PlannedRequest:
    """A request the run would send (``--dry-run``), with its price estimate."""

    phase: str
    operation_id: str
    summary: str
    estimate_usd: float  # expected spend: the price, or 0 when the target's catalog says it will be refused
    ceiling_usd: float = 0.0  # what the budget reserves before sending (the upper bound)


@dataclass
class RunResult:
    """Everything a run produced; the reports are views of this."""

    target: dict[str, Any]
    cases: list[CaseResult] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (budget, max requests), if it did
    requests: int = 0
    spent_usd: float = 0.0
    budget_usd: float | None = None
    duration_s: float = 0.0
    dry_run: bool = False
    plan: list[PlannedRequest] = field(default_factory=list)
    drift: list[Finding] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # drift keys accepted by the baseline
    coverage: dict[str, Any] | None = None  # {covered, total, uncovered: [{facet, reason}]} (contracts.coverage)

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.cases for f in c.findings]

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status in ("failed", "error")]

    @property
    def unaccepted_drift(self) -> list[Finding]:
        accepted = set(self.accepted)
        return [f for f in self.drift if f.key not in accepted]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unaccepted_drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "nanogpt-contract-result/1",
            "ok": self.ok,
            "target": self.target,
            "stopped": self.stopped,
            "dry_run": self.dry_run,
            "requests": self.requests,
            "spent_usd": round(self.spent_usd, 6),
            "budget_usd": self.budget_usd,
            "duration_s": round(self.duration_s, 3),
            "summary": {
                "cases": len(self.cases),
                "passed": sum(c.status == "passed" for c in self.cases),
                "failed": sum(c.status == "failed" for c in self.cases),
                "errors": sum(c.status == "error" for c in self.cases),
                "skipped": sum(c.status == "skipped" for c in self.cases),
                "drift": len(self.drift),
                "unaccepted_drift": len(self.unaccepted_drift),
            },
            "cases": [c.to_dict() for c in self.cases],
            "drift": [dict(f.to_dict(), accepted=f.key in set(self.accepted)) for f in self.drift],
            "coverage": self.coverage,
            "plan": [asdict(p) for p in self.plan],
            "estimated_usd": round(sum(p.estimate_usd for p in self.plan), 6),
            "reserved_usd": round(sum(p.ceiling_usd for p in self.plan), 6),
        }
