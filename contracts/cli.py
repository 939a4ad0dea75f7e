"""``nanogpt-contract``: run / record / diff / vendor-diff.

Results and progress go to stdout, diagnostics (bad input, unreachable target) to stderr as one line.
Exit codes: 0 everything that was checked conforms (and no unaccepted drift); 1 failures or
unaccepted drift; 2 usage or target errors (a bad option value, no key, an unreachable base URL,
an unreadable file), reported on one line naming every problem; 3 the run stopped early (budget or
request cap) without a failure in what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .budget import DEFAULT_BUDGET_USD, DEFAULT_MAX_REQUESTS
from .model import RunResult
from .target import DEFAULT_KEY_ENV, TargetError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block), exit 2; subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def usage_problems(args: argparse.Namespace) -> list[str]:
    """Every problem of the parsed options that can be seen before anything is sent."""
    problems: list[str] = []
    phases = getattr(args, "phases", None)
    if phases is not None:
        from .runner import PHASES as KNOWN_PHASES  # the runner's own list: a new phase is known at once

        chosen = [p.strip() for p in phases.split(",") if p.strip()]
        unknown = [p for p in chosen if p not in KNOWN_PHASES]
        if unknown or not chosen:
            problems.append(
                f"--phases {phases!r}: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose from {','.join(KNOWN_PHASES)}"
            )
    for name, least in (("examples", 1), ("domain_examples", 1), ("max_requests", 1), ("budget_usd", 0)):
        value = getattr(args, name, None)
        if value is not None and not value >= least:
            problems.append(f"--{name.replace('_', '-')} {value} must be at least {least}")
    base_url = getattr(args, "base_url", None)
    if base_url is not None and (urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc):
        problems.append(f"--base-url {base_url!r} is not an http(s)://host URL")
    for name in ("spec", "snapshot"):
        path = getattr(args, name, None)
        if path is not None and not path.is_file():
            problems.append(f"--{name} {path} does not exist")
    for name in ("junit", "markdown", "json", "output"):
        path = getattr(args, name, None)
        if isinstance(path, Path) and not path.parent.is_dir():
            problems.append(f"--{name} {path}: directory {path.parent} does not exist")
    operations = getattr(args, "operations", None)
    spec = getattr(args, "spec", None)
    if operations and (spec is None or spec.is_file()):
        from mockserver.spec import load_spec

        known = set(load_spec(spec).by_id)
        unknown = sorted({o.strip() for o in operations.split(",") if o.strip()} - known)
        if unknown:
            problems.append(f"--operations: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return problems


def _target_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (refused, DNS, TLS, timeout), from httpx or requests."""
    import httpx
    import requests

    return isinstance(exc, httpx.TransportError | requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def _target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target")
    group.add_argument("--base-url", help="server to verify (default: the bundled mock, in-process)")
    group.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        help=f"environment variable holding the API key (default {DEFAULT_KEY_ENV}); never pass a key",
    )
    group.add_argument("--spec", type=Path, help="OpenAPI document to hold the target to (default: the bundled spec)")
    safety = parser.add_argument_group("cost safety")
    safety.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        help=f"stop before spending more (default {DEFAULT_BUDGET_USD} on a live target, none on a mock)",
    )
    safety.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help=f"stop before sending more requests (default {DEFAULT_MAX_REQUESTS} live, none on a mock)",
    )
    safety.add_argument(
        "--all-models",
        action="store_true",
        help="positive cases over every model and size (default on a live target: cheapest, n=1)",
    )
    safety.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and its estimated cost; nothing is sent except the anonymous catalog "
        "GETs needed to price it",
    )
    run = parser.add_argument_group("what to run")
    run.add_argument(
        "--phases", default="negative,coverage,schema,domain", help="comma-separated: negative,coverage,schema,domain"
    )
    run.add_argument("--operations", help="comma-separated operationIds (default: all)")
    run.add_argument("--examples", type=int, default=12, help="schemathesis examples per operation and mode")
    run.add_argument("--domain-examples", type=int, default=6, help="catalog-driven examples per operation")
    out = parser.add_argument_group("outputs")
    out.add_argument("--junit", type=Path, help="write JUnit XML here")
    out.add_argument("--markdown", type=Path, help="write the Markdown summary here (default: $GITHUB_STEP_SUMMARY)")
    out.add_argument("--json", type=Path, help="write the machine-readable result here")
    out.add_argument("-q", "--quiet", action="store_true", help="no per-case progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nanogpt-contract", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="verify a target against the spec")
    _target_options(run)
    record = sub.add_parser("record", help="run, then store a redacted snapshot of the target")
    _target_options(record)
    record.add_argument("--output", "-o", type=Path, required=True, help="snapshot file to write")
    diff = sub.add_parser("diff", help="run, then report drift against a snapshot and the spec")
    _target_options(diff)
    diff.add_argument("--snapshot", type=Path, required=True, help="snapshot written by `record`")
    diff.add_argument("--baseline", type=Path, help="accepted drift (JSON); only other drift fails the run")
    diff.add_argument("--update-baseline", action="store_true", help="accept all current drift into --baseline")
    diff.add_argument(
        "--recording",
        type=Path,
        metavar="DIR",
        help="compare the exchanges `nanogpt-mock proxy --record DIR` stored instead of running (nothing is sent)",
    )
    vendor = sub.add_parser("vendor-diff", help="compare the vendor's published openapi.json with our spec")
    vendor.add_argument("--vendor", required=True, help="path or URL of the vendor's OpenAPI document")
    vendor.add_argument("--spec", type=Path, help="our spec (default: the bundled one)")
    vendor.add_argument("--baseline", type=Path, help="accepted disagreements")
    vendor.add_argument("--update-baseline", action="store_true")
    vendor.add_argument("--markdown", type=Path)
    vendor.add_argument("--json", type=Path)
    return parser


def _options(args: argparse.Namespace, live: bool, snapshot_catalog: bool = False) -> Any:
    from .report import progress_printer
    from .runner import RunOptions

    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    return RunOptions(
        phases=phases,
        operations={o.strip() for o in args.operations.split(",")} if args.operations else None,
        schema_examples=args.examples,
        domain_examples=args.domain_examples,
        budget_usd=args.budget_usd if args.budget_usd is not None else (DEFAULT_BUDGET_USD if live else None),
        max_requests=args.max_requests if args.max_requests is not None else (DEFAULT_MAX_REQUESTS if live else None),
        cheap=False if args.all_models else None,
        dry_run=args.dry_run,
        spec_path=args.spec,
        # a dry run decides nothing per case: its output is the plan, printed at the end
        progress=None if args.quiet or args.dry_run else progress_printer(),
    )


def _write_outputs(args: argparse.Namespace, result: RunResult, title: str) -> None:
    from .report import to_json, to_junit, to_markdown

    if getattr(args, "junit", None):
        args.junit.write_text(to_junit(result))
    markdown = to_markdown(result, title)
    if getattr(args, "markdown", None):
        args.markdown.write_text(markdown)
    elif os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as fh:
            fh.write(markdown)
    if getattr(args, "json", None):
        args.json.write_text(to_json(result))


def _exit(result: RunResult) -> int:
    if not result.ok:
        return EXIT_FAILED
    if result.stopped and not result.dry_run:
        return EXIT_STOPPED
    return EXIT_OK


def execute(args: argparse.Namespace, app: Any = None) -> tuple[RunResult, dict[str, Any] | None]:
    """Run the contract suite for ``run`` / ``record`` / ``diff``; returns the result and the fresh snapshot."""
    from .runner import Runner
    from .target import open_target

    with open_target(args.base_url, key_env=args.key_env, app=app) as target:
        runner = Runner(target, _options(args, live=target.live))
        result = runner.run()
        snapshot = None if result.dry_run else runner.snapshot()
    return result, snapshot


def main(argv: Sequence[str] | None = None, *, app: Any = None) -> int:
    """Entry point; ``app`` lets tests hand in an ASGI app to serve instead of the bundled mock."""
    args = build_parser().parse_args(argv)
    problems = usage_problems(args)
    if problems:
        print("nanogpt-contract: " + "; ".join(problems), file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "vendor-diff":
            return _vendor_diff(args)
        if getattr(args, "recording", None) is not None:
            result, snapshot = _from_recording(args)
        else:
            result, snapshot = execute(args, app)
    except TargetError as exc:
        print(f"nanogpt-contract: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if not _target_unreachable(exc):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"nanogpt-contract: cannot reach {args.base_url or 'the bundled mock'}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    from .report import summary_line

    if args.command == "record" and snapshot is not None:
        args.output.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
        print(f"snapshot written to {args.output}", file=sys.stderr)
    if args.command == "diff" and snapshot is not None:
        from .drift import diff_snapshots, load_baseline, write_baseline

        try:
            stored = json.loads(args.snapshot.read_text())
        except (OSError, ValueError) as exc:
            print(f"nanogpt-contract: cannot read snapshot {args.snapshot}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if getattr(args, "recording", None) is not None:
            from .snapshot import recording_view

            stored, seen = recording_view(stored, snapshot)
            result.drift = [f for f in diff_snapshots(stored, seen) if f.check != "field_removed"]
        else:
            result.drift = diff_snapshots(stored, snapshot)
        if args.baseline and args.update_baseline:
            write_baseline(args.baseline, result.drift)
        if args.baseline and args.baseline.exists():
            result.accepted = load_baseline(args.baseline)
    title = {"run": "NanoGPT contract run", "record": "NanoGPT contract snapshot", "diff": "NanoGPT drift report"}
    _write_outputs(args, result, title[args.command])
    if result.dry_run and not args.quiet:
        for planned in result.plan:
            print(f"PLAN [{planned.phase}] {planned.operation_id} ~${planned.estimate_usd:.4f}: {planned.summary}")
    print(summary_line(result), flush=True)  # results on stdout (| tee), diagnostics on stderr
    return _exit(result)


def _from_recording(args: argparse.Namespace) -> tuple[RunResult, dict[str, Any] | None]:
    """``diff --recording DIR``: the snapshot of recorded traffic, no run (nothing is sent)."""
    from mockserver.spec import load_spec

    from .snapshot import snapshot_from_recording

    if not args.recording.is_dir():
        raise TargetError(f"--recording {args.recording}: not a directory")
    snapshot = snapshot_from_recording(args.recording, load_spec(args.spec))
    return RunResult({"kind": "recording", "base_url": str(args.recording), "mock": False}), snapshot


def _vendor_diff(args: argparse.Namespace) -> int:
    from mockserver.spec import load_spec

    from .drift import compare_specs, load_baseline, load_document, write_baseline
    from .report import to_json, to_markdown

    try:
        vendor = load_document(args.vendor)
    except (OSError, ValueError) as exc:
        print(f"nanogpt-contract: cannot read {args.vendor}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ours = dict(load_spec(args.spec).document)
    result = RunResult({"kind": "spec", "base_url": str(args.vendor)})
    result.drift = compare_specs(ours, vendor)
    if args.baseline and args.update_baseline:
        write_baseline(args.baseline, result.drift)
    if args.baseline and args.baseline.exists():
        result.accepted = load_baseline(args.baseline)
    markdown = to_markdown(result, "Vendor spec vs our spec")
    if args.markdown:
        args.markdown.write_text(markdown)
    if args.json:
        args.json.write_text(to_json(result))
    if not args.markdown and not args.json:
        print(markdown)
    print(f"{len(result.drift)} disagreements, {len(result.unaccepted_drift)} not accepted", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
