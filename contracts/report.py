"""Views of a ``RunResult``: live terminal lines, JUnit XML, Markdown (CI job summary), JSON.

Everything here is built from findings that the runner already redacted; nothing prints the key.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import IO, Any
from xml.etree import ElementTree as ET

from .model import CaseResult, Finding, RunResult

_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERR "}


def progress_printer(stream: IO[str] | None = None) -> Any:
    """A callback for ``RunOptions.progress``: one line per finished case, as it finishes."""
    out = stream or sys.stdout  # progress is output (``| tee run.log``); diagnostics stay on stderr

    def show(case: CaseResult) -> None:
        extra = f" ({case.note})" if case.note else ""
        out.write(
            f"{_MARK[case.status]} [{case.phase}] {case.name}: {case.requests} req, ${case.cost_usd:.4f}, "
            f"{case.duration_s:.2f}s{extra}\n"
        )
        for finding in case.findings[:10]:
            out.write(f"      - {describe(finding)}\n")
        out.flush()

    return show


def describe(finding: Finding) -> str:
    where = [x for x in (finding.operation_id, str(finding.status) if finding.status else None) if x]
    if finding.code:
        where.append(f"code={finding.code}")
    if finding.model:
        where.append(f"model={finding.model}")
    if finding.path:
        where.append(finding.path)
    return f"{finding.check} [{' '.join(where)}]: {finding.message}"


def summary_line(result: RunResult) -> str:
    if result.dry_run:
        total = sum(p.estimate_usd for p in result.plan)
        ceiling = sum(p.ceiling_usd for p in result.plan)
        text = (
            f"DRY RUN: {len(result.plan)} requests planned, estimated ${total:.4f} "
            f"(at most ${ceiling:.4f}); nothing was sent"
        )
        if result.budget_usd is not None:
            text += f" (budget ${result.budget_usd:.2f})"
        return text + (f"\nTHE RUN WOULD STOP EARLY: {result.stopped}" if result.stopped else "")
    counts = Counter(c.status for c in result.cases)
    verdict = "OK" if result.ok else "FAILED"
    text = (
        f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped; {result.requests} requests, ${result.spent_usd:.4f} spent"
    )
    if result.budget_usd is not None:
        text += f" of ${result.budget_usd:.2f}"
    if result.coverage is not None:
        text += f"; covered {result.coverage['covered']} of {result.coverage['total']} facets"
    if result.target.get("auth_policy") == "any_key" and result.target.get("mock"):
        text += "; the target accepts any key, so invalid-key probes were not provokable"
    if result.drift:
        text += f"; drift: {len(result.drift)} ({len(result.unaccepted_drift)} not accepted)"
    if result.stopped:
        text += f"\nSTOPPED EARLY: {result.stopped}"
    return text


def to_json(result: RunResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=False)


def to_junit(result: RunResult) -> str:
    root = ET.Element("testsuites", name="nanogpt-contract")
    phases: dict[str, list[CaseResult]] = {}
    for case in result.cases:
        phases.setdefault(case.phase, []).append(case)
    if result.drift:
        phases.setdefault("drift", [])
    for phase, cases in phases.items():
        suite = ET.SubElement(root, "testsuite", name=f"contract.{phase}")
        failures = errors = skipped = 0
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"contract.{phase}.{case.operation_id or 'all'}",
                name=case.name,
                time=f"{case.duration_s:.3f}",
            )
            if case.status == "failed":
                failures += 1
                node = ET.SubElement(element, "failure", message=f"{len(case.findings)} finding(s)")
                node.text = "\n".join(describe(f) for f in case.findings)
            elif case.status == "error":
                errors += 1
                ET.SubElement(element, "error", message=case.note or "error")
            elif case.status == "skipped":
                skipped += 1
                ET.SubElement(element, "skipped", message=case.note or "skipped")
        if phase == "drift":
            accepted = set(result.accepted)
            for finding in result.drift:
                element = ET.SubElement(suite, "testcase", classname="contract.drift", name=finding.key)
                if finding.key in accepted:
                    skipped += 1
                    ET.SubElement(element, "skipped", message="accepted by the baseline")
                else:
                    failures += 1
                    ET.SubElement(element, "failure", message=finding.check).text = describe(finding)
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
    if result.stopped:
        suite = ET.SubElement(root, "testsuite", name="contract.run", tests="1", failures="0", errors="0", skipped="1")
        case_el = ET.SubElement(suite, "testcase", classname="contract.run", name="run completed")
        ET.SubElement(case_el, "skipped", message=result.stopped)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: RunResult, title: str = "NanoGPT contract run") -> str:
    """Markdown fit for ``$GITHUB_STEP_SUMMARY``."""
    lines = [f"## {title}", ""]
    target = result.target
    lines.append(f"**Target:** {target.get('kind')} `{target.get('base_url')}`  ")
    lines.append(f"**Verdict:** {'✅ conforms' if result.ok else '❌ does not conform'}  ")
    lines.append(f"**Summary:** {_cell(summary_line(result).splitlines()[0])}")
    lines.append("")
    if result.stopped:
        lines += [f"> ⚠️ **Stopped early:** {result.stopped}", ""]
    if result.coverage is not None:
        lines += [f"**Coverage:** covered {result.coverage['covered']} of {result.coverage['total']} facets", ""]
        if result.coverage["uncovered"]:
            lines += ["| uncovered facet | reason |", "|---|---|"]
            lines += [f"| `{u['facet']}` | {_cell(u['reason'])} |" for u in result.coverage["uncovered"]]
            lines.append("")
    if result.dry_run:
        lines += [
            "### Plan (dry run: nothing was sent)",
            "",
            "| phase | operation | request | estimate |",
            "|---|---|---|---|",
        ]
        for planned in result.plan[:200]:
            lines.append(
                f"| {planned.phase} | {planned.operation_id} | `{_cell(planned.summary[:120])}` | "
                f"${planned.estimate_usd:.4f} |"
            )
        total = sum(p.estimate_usd for p in result.plan)
        lines += ["", f"**Estimated cost:** ${total:.4f} for {len(result.plan)} requests", ""]
    failed = result.failed
    if failed:
        lines += ["### Failures", "", "| check | operation | status | where | message |", "|---|---|---|---|---|"]
        for case in failed:
            for f in case.findings:
                where = " ".join(
                    x
                    for x in (f.path, f"code={f.code}" if f.code else None, f"model={f.model}" if f.model else None)
                    if x
                )
                lines.append(
                    f"| `{f.check}` | {f.operation_id or ''} | {f.status or ''} | {_cell(where)} | "
                    f"{_cell(f.message[:300])} |"
                )
        lines.append("")
    if result.drift:
        accepted = set(result.accepted)
        lines += ["### Drift", "", "| | drift | operation | where | detail |", "|---|---|---|---|---|"]
        for f in result.drift:
            mark = "accepted" if f.key in accepted else "**new**"
            where = " ".join(
                x
                for x in (
                    str(f.status) if f.status else None,
                    f.path,
                    f"code={f.code}" if f.code else None,
                    f"model={f.model}" if f.model else None,
                )
                if x
            )
            lines.append(f"| {mark} | `{f.check}` | {f.operation_id or ''} | {_cell(where)} | {_cell(f.message)} |")
        lines.append("")
    by_phase = Counter((c.phase, c.status) for c in result.cases)
    lines += ["### Cases", "", "| phase | passed | failed | skipped |", "|---|---|---|---|"]
    for phase in dict.fromkeys(c.phase for c in result.cases):
        lines.append(
            f"| {phase} | {by_phase[(phase, 'passed')]} | {by_phase[(phase, 'failed')] + by_phase[(phase, 'error')]}"
            f" | {by_phase[(phase, 'skipped')]} |"
        )
    skipped = [c for c in result.cases if c.status == "skipped"]
    if skipped:
        lines += ["", "<details><summary>Skipped cases</summary>", ""]
        lines += [f"- {c.name}: {c.note}" for c in skipped]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
