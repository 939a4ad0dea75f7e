"""The load: scenarios (one request each), wrk runs, the servers side by side, cold start, RSS, concurrency.

Each server runs as one process on loopback (pinned to CPU 0 when there are two or more cores) and is driven
by ``wrk`` (pinned to CPU 1) with the same requests, in interleaved rounds so that a slow phase of the shared
machine hits every row alike.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import (
    AUTH,
    BENCH,
    CATALOG_PATH,
    HOST,
    ROOT,
    free_port,
    group_rss_kib,
    request,
    spawn,
    stop,
    wait_ready,
)
from tools import PRISM_BIN

SPEC = ROOT / "spec" / "openapi.yaml"
WARMUP_S = 1.5
GEN_PATH = "/v1/images/generations"
EDIT_PATH = "/api/v1/images/edits"
REJECT_PATH = "/api/v1/images"


def _body(**fields: object) -> str:
    """A generation request: hidream, 1024x1024, a fixed prompt, plus ``fields``."""
    return json.dumps(
        {"prompt": "a lighthouse", "model": "hidream", "size": "1024x1024", **fields}, separators=(",", ":")
    )


def _edit_source() -> str:
    """A 256x256 PNG (a smooth gradient) as a data URL: the input of the edit row."""
    from PIL import Image

    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((256, 256)),
            Image.linear_gradient("L").rotate(90).resize((256, 256)),
            Image.new("L", (256, 256), 96),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    method: str
    path: str
    body: str | None
    expect: int


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("gen_fixed", "POST generation, fixed seed", "POST", GEN_PATH, _body(seed=42), 200),
        Scenario("gen_b64", "POST generation, unseeded b64", "POST", GEN_PATH, _body(), 200),
        Scenario("gen_url", "POST generation, unseeded url", "POST", GEN_PATH, _body(response_format="url"), 200),
        Scenario("gen_jpeg", "POST generation, unseeded JPEG", "POST", GEN_PATH, _body(output_format="jpeg"), 200),
        Scenario("gen_webp", "POST generation, unseeded WebP", "POST", GEN_PATH, _body(output_format="webp"), 200),
        Scenario(
            "edit",
            "POST edit (256x256 PNG in), unseeded",
            "POST",
            EDIT_PATH,
            json.dumps(
                {"prompt": "add a hat", "model": "flux-kontext", "imageDataUrl": _edit_source()}, separators=(",", ":")
            ),
            200,
        ),
        Scenario("catalog", "GET image catalog", "GET", CATALOG_PATH, None, 200),
        Scenario("reject", "POST rejected (missing_model)", "POST", REJECT_PATH, '{"prompt":"x"}', 400),
    )
}
# The ceiling answers a fixed JSON body to the same requests (the POST one reads the body first).
BARE_SCENARIOS = ("gen_fixed", "catalog")


def _image_note(data: bytes) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.format} {image.width}x{image.height}"
    except Exception:
        return "not an image"


def probe(port: int, scenario: Scenario) -> str:
    """One request before the load: does the server answer as expected, and with what?"""
    answer = request(port, scenario.method, scenario.path, scenario.body)
    note = f"{answer.status}, {len(answer.body)} B"
    if scenario.method == "POST" and answer.status == 200:
        try:
            item = json.loads(answer.body)["data"][0]
            if "b64_json" in item:
                note += ", b64_json " + _image_note(base64.b64decode(item["b64_json"]))
            else:
                note += ", url"
        except (ValueError, KeyError, IndexError, TypeError):
            note += ", not an images body"
    elif scenario.key == "reject" and answer.status >= 400:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            parsed = json.loads(answer.body)
            inner = parsed.get("error")
            code = inner.get("code") if isinstance(inner, dict) else parsed.get("code")
            note += f", code {code}"
    if answer.status != scenario.expect:
        note += f" (expected {scenario.expect})"
    return note


def lua_script(scenario: Scenario, out: Path, stop_after: int = 0) -> str:
    """A wrk script: the request, status counting, a JSON summary written by ``done``."""
    lines = [
        f'wrk.method = "{scenario.method}"',
        f'wrk.headers["Authorization"] = "{AUTH}"',
    ]
    if scenario.body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = [==[{scenario.body}]==]")
    lines += [
        "local threads = {}",
        "function setup(thread)",
        "  table.insert(threads, thread)",
        "end",
        "statuses = {}",
        "local seen = 0",
        "function response(status, headers, body)",
        "  statuses[status] = (statuses[status] or 0) + 1",
    ]
    if stop_after:
        lines += [
            "  seen = seen + 1",
            f"  if seen >= {math.ceil(stop_after)} then wrk.thread:stop() end",
        ]
    lines += [
        "end",
        "function done(summary, latency, requests)",
        "  local agg = {}",
        "  for _, t in ipairs(threads) do",
        "    for k, v in pairs(t:get('statuses')) do agg[k] = (agg[k] or 0) + v end",
        "  end",
        "  local parts = {}",
        "  for k, v in pairs(agg) do table.insert(parts, string.format('\"%d\":%d', k, v)) end",
        "  local e = summary.errors",
        f"  local f = assert(io.open([==[{out}]==], 'w'))",
        '  f:write(string.format(\'{"requests":%d,"duration_us":%d,"bytes":%d,\''
        ' .. \'"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_errors":%d,\''
        ' .. \'"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%f,"max_us":%d,"statuses":{%s}}\','
        " summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,"
        " latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,"
        " table.concat(parts, ',')))",
        "  f:close()",
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    expected: int
    unexpected: int
    socket_errors: int
    statuses: dict[str, int]
    rounds_rps: list[float] = field(default_factory=list)


def run_wrk(
    port: int,
    scenario: Scenario,
    seconds: float,
    connections: int,
    work: Path,
    *,
    cpu: int | None,
    stop_after: int = 0,
) -> Load:
    out = work / f"wrk-{scenario.key}-{time.monotonic_ns()}.json"
    script = work / f"{scenario.key}.lua"
    script.write_text(lua_script(scenario, out, stop_after))
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{scenario.path}",
    ]
    proc = spawn(argv, log=work / f"wrk-{scenario.key}.log", cpu=cpu)
    try:
        proc.wait(timeout=seconds + 30)
    finally:
        stop(proc)
    if not out.exists():
        raise RuntimeError(f"wrk wrote no summary; see {work / f'wrk-{scenario.key}.log'}")
    raw = json.loads(out.read_text())
    duration = raw["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in raw["statuses"].items()}
    expected = statuses.get(str(scenario.expect), 0)
    return Load(
        requests=raw["requests"],
        seconds=duration,
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        expected=expected,
        unexpected=sum(statuses.values()) - expected,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        statuses=statuses,
    )


def combine(loads: list[Load]) -> Load:
    """One row from the slices of all rounds: total requests over total time; median p50/p90/p99 of the slices."""
    seconds = sum(x.seconds for x in loads)
    requests = sum(x.requests for x in loads)
    statuses: dict[str, int] = {}
    for x in loads:
        for k, v in x.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return Load(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p90_ms=statistics.median(x.p90_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        mean_ms=sum(x.mean_ms * x.requests for x in loads) / max(1, requests),
        expected=sum(x.expected for x in loads),
        unexpected=sum(x.unexpected for x in loads),
        socket_errors=sum(x.socket_errors for x in loads),
        statuses=statuses,
        rounds_rps=[x.rps for x in loads],
    )


# -- servers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    key: str
    label: str
    argv: tuple[str, ...]  # "{port}" is replaced
    ready_timeout: float = 30.0


MOCK, BARE, PRISM = "nanogpt-mock", "bare Starlette (ceiling)", "Stoplight Prism"


def mock_argv() -> list[str]:
    script = Path(sys.executable).parent / "nanogpt-mock"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "mockserver"]
    # a balance no run can spend: at ~15k generations/s the default 1000 USD lasts ten seconds, and the
    # 402s that follow would be measured instead of generations
    return [*head, "--port", "{port}", "--log-level", "warning", "--balance", "1000000000"]


def servers(skip_prism: bool) -> list[Server]:
    out = [
        Server("bare", BARE, (sys.executable, str(BENCH / "bare_app.py"), "--port", "{port}")),
        Server("mock", MOCK, tuple(mock_argv())),
    ]
    if not skip_prism:
        prism = (str(PRISM_BIN), "mock", str(SPEC), "-p", "{port}", "-h", HOST, "--errors=false", "-v", "silent")
        out.append(Server("prism", PRISM, prism, ready_timeout=90.0))
    return out


@dataclass
class Row:
    server: str
    scenario: str
    label: str
    probe: str
    load: Load
    rss_before_kib: int
    rss_after_kib: int


@dataclass
class Results:
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    startup_s: dict[str, float] = field(default_factory=dict)
    cold_start_s: list[float] = field(default_factory=list)
    rss_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    concurrency: dict[str, Any] = field(default_factory=dict)
    render: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rps(self, server: str, scenario: str) -> float | None:
        for row in self.rows:
            if row.server == server and row.scenario == scenario:
                return row.load.rps
        return None


@dataclass
class Running:
    server: Server
    proc: subprocess.Popen[bytes]
    port: int


def start(
    argv: list[str], work: Path, name: str, cpu: int | None, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free port and wait for its first 200."""
    port = free_port()
    proc = spawn([a.replace("{port}", str(port)) for a in argv], log=work / f"{name}.log", cpu=cpu)
    try:
        wait_ready(proc, port, timeout)
    except RuntimeError:
        stop(proc)
        raise
    return proc, port


def bench_servers(args: argparse.Namespace, work: Path, results: Results, table_line: Any) -> None:
    """Start every server (idle ones cost nothing), then load them in interleaved rounds.

    Each (server, scenario) gets ``duration / rounds`` seconds per round, in the same order every round, so
    a slow phase of the machine (other tenants, frequency changes) hits every row alike instead of one.
    """
    running: list[Running] = []
    try:
        for server in servers(args.skip_prism):
            port = free_port()
            argv = [a.replace("{port}", str(port)) for a in server.argv]
            proc = spawn(argv, log=work / f"{server.key}.log", cpu=args.server_cpu)
            try:
                results.startup_s[server.key] = wait_ready(proc, port, server.ready_timeout)
            except RuntimeError as exc:
                log = (work / f"{server.key}.log").read_text(errors="replace")[-2000:]
                results.notes.append(f"{server.label} did not start: {exc}")
                print(f"{server.label} did not start: {exc}\n{log}", file=sys.stderr)
                stop(proc)
                continue
            running.append(Running(server, proc, port))
        plan: list[tuple[Running, Scenario]] = [
            (r, SCENARIOS[key])
            for r in running
            for key in (BARE_SCENARIOS if r.server.key == "bare" else tuple(SCENARIOS))
        ]
        notes: dict[tuple[str, str], str] = {}
        rss_before: dict[str, int] = {}
        for r, scenario in plan:  # probe, then warm up every path once
            notes[(r.server.key, scenario.key)] = probe(r.port, scenario)
            rss_before.setdefault(r.server.key, group_rss_kib(r.proc.pid))
            run_wrk(r.port, scenario, WARMUP_S, args.connections, work, cpu=args.load_cpu)
        slices: dict[tuple[str, str], list[Load]] = {}
        slice_s = max(1.0, args.duration / args.rounds)
        for round_no in range(args.rounds):
            print(f"  round {round_no + 1}/{args.rounds} ...", end="\r", file=sys.stderr, flush=True)
            for r, scenario in plan:
                load = run_wrk(r.port, scenario, slice_s, args.connections, work, cpu=args.load_cpu)
                slices.setdefault((r.server.key, scenario.key), []).append(load)
                if r.proc.poll() is not None:
                    raise RuntimeError(f"{r.server.label} died during {scenario.label}")
        for r, scenario in plan:
            row = Row(
                r.server.label,
                scenario.key,
                scenario.label,
                notes[(r.server.key, scenario.key)],
                combine(slices[(r.server.key, scenario.key)]),
                rss_before[r.server.key],
                group_rss_kib(r.proc.pid),
            )
            results.rows.append(row)
            print(table_line(row), flush=True)
    finally:
        for r in running:
            stop(r.proc)


def cold_start(args: argparse.Namespace, work: Path, runs: int) -> list[float]:
    """Seconds from spawning nanogpt-mock to its first 200 on the catalog (polled every 5 ms)."""
    times: list[float] = []
    for i in range(runs):
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in mock_argv()]
        began = time.perf_counter()
        proc = spawn(argv, log=work / f"cold-{i}.log", cpu=args.server_cpu)
        try:
            wait_ready(proc, port, 30.0)
            times.append(time.perf_counter() - began)
        finally:
            stop(proc)
    return times


def rss_run(args: argparse.Namespace, work: Path, scenario_key: str, rate: float | None) -> dict[str, Any]:
    """VmRSS of a fresh mock before and after ``args.rss_requests`` requests of one scenario."""
    scenario = SCENARIOS[scenario_key]
    proc, port = start(mock_argv(), work, f"rss-{scenario_key}", args.server_cpu)
    try:
        rss_idle = group_rss_kib(proc.pid)
        run_wrk(port, scenario, WARMUP_S, args.connections, work, cpu=args.load_cpu)
        rss_before = group_rss_kib(proc.pid)
        seconds = min(args.rss_max_seconds, math.ceil(args.rss_requests / (rate or 1000.0) * 1.3) + 2)
        load = run_wrk(port, scenario, seconds, args.connections, work, cpu=args.load_cpu, stop_after=args.rss_requests)
        rss_after = group_rss_kib(proc.pid)
        return {
            "scenario": scenario_key,
            "requests": load.requests,
            "unexpected": load.unexpected + load.socket_errors,
            "rss_idle_kib": rss_idle,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "growth": (rss_after - rss_before) / rss_before if rss_before else 0.0,
        }
    finally:
        stop(proc)


def concurrency_run(args: argparse.Namespace, work: Path, connections: int, seconds: float) -> dict[str, Any]:
    """``connections`` concurrent unseeded b64 generations against a fresh mock: latency under a burst."""
    scenario = SCENARIOS["gen_b64"]
    proc, port = start(mock_argv(), work, "concurrency", args.server_cpu)
    try:
        run_wrk(port, scenario, WARMUP_S, connections, work, cpu=args.load_cpu)
        load = run_wrk(port, scenario, seconds, connections, work, cpu=args.load_cpu)
        return {
            "connections": connections,
            "seconds": round(load.seconds, 2),
            "requests": load.requests,
            "rps": load.rps,
            "p50_s": load.p50_ms / 1000,
            "p99_s": load.p99_ms / 1000,
            "mean_s": load.mean_ms / 1000,
            "unexpected": load.unexpected,
            "socket_errors": load.socket_errors,
        }
    finally:
        stop(proc)
