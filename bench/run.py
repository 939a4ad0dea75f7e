"""The benchmark harness: the mock beside a bare Starlette ceiling and Stoplight Prism, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--connections 32] [--skip-prism] [--skip-micro]

Each server runs as one process on loopback (pinned to CPU 0 when the machine has two or more cores) and
is driven by ``wrk`` (pinned to CPU 1) with the same requests. The harness installs what it lacks: ``wrk``
from Debian (``apt-get``, as root) and ``@stoplight/prism-cli`` from npm into ``bench/.tools/prism``.
Prints a table (req/s, p50/p99, unexpected answers, socket errors, server RSS), the target ratios with
PASS/FAIL, the mock's cold start and RSS growth over a 50k-request run, and the renderer and validation
micro-benchmarks. Writes ``bench/results/latest.json`` and ``bench/results/latest.md``.

Every process it starts gets its own process group and is stopped in ``finally`` (Ctrl-C included).
Load is bounded: ``duration`` seconds per scenario (plus a short warm-up), one 50k-request run, and
nothing but 127.0.0.1 is ever contacted (apart from the package installs).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

HOST = "127.0.0.1"
TOOLS = BENCH / ".tools"
PRISM_DIR = TOOLS / "prism"
PRISM_BIN = PRISM_DIR / "node_modules" / ".bin" / "prism"
RESULTS = BENCH / "results"
SPEC = ROOT / "spec" / "openapi.yaml"
AUTH = "Bearer bench-key"
GEN_PATH = "/v1/images/generations"
GEN_BODY = '{"prompt":"a lighthouse","model":"hidream","size":"1024x1024","seed":42}'
GEN_TEMPLATE = '{"prompt":"a lighthouse","model":"hidream","size":"1024x1024","seed":%d}'
CATALOG_PATH = "/api/v1/images/models"
REJECT_PATH = "/api/v1/images"
REJECT_BODY = '{"prompt":"x"}'
WARMUP_S = 2.0

# targets from the issue: (key, description, threshold, comparison)
TARGET_PRISM_X = 3.0
TARGET_GEN_OF_CEILING = 0.50
TARGET_CATALOG_OF_CEILING = 0.80
TARGET_RENDER_MS = 3.0
TARGET_CACHED_MS = 0.1  # "almost nothing": a repeated identical request's image costs < 0.1 ms
TARGET_COLD_START_S = 1.0
TARGET_RSS_GROWTH = 0.10


# -- processes ------------------------------------------------------------------------------------
_STARTED: list[subprocess.Popen[bytes]] = []


def spawn(argv: Sequence[str], *, log: Path | None = None, cpu: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group (so it and its children can be stopped together)."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
    finally:
        if log is not None and not isinstance(out, int):
            out.close()
    _STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    if proc in _STARTED:
        _STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(_STARTED):
        stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def group_rss_kib(pgid: int) -> int:
    """Sum of VmRSS (KiB) over the processes of a process group (a server and anything it forked)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:  # field 5 of stat: pgrp
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


# -- HTTP probes ----------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request(port: int, method: str, path: str, body: str | None = None, timeout: float = 10.0) -> Answer:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": AUTH}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float, poll_s: float = 0.005) -> float:
    """Seconds from now until the catalog answers 200 (polled every 5 ms); raises if it never does."""
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            if request(port, "GET", CATALOG_PATH, timeout=2.0).status == 200:
                return time.perf_counter() - started
        except (ConnectionError, OSError, http.client.HTTPException):
            pass
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"server on port {port} not ready after {timeout:.0f}s")
        time.sleep(poll_s)


def png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# -- scenarios ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    method: str
    path: str
    body: str | None
    expect: int
    vary_seed: bool = False


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("gen_fixed", "POST generation, fixed seed", "POST", GEN_PATH, GEN_BODY, 200),
        Scenario("gen_vary", "POST generation, new seed/request", "POST", GEN_PATH, GEN_TEMPLATE, 200, True),
        Scenario("catalog", "GET image catalog", "GET", CATALOG_PATH, None, 200),
        Scenario("reject", "POST rejected (missing_model)", "POST", REJECT_PATH, REJECT_BODY, 400),
    )
}
# The ceiling answers a fixed JSON body to the same requests (the POST one reads the body first).
BARE_SCENARIOS = ("gen_fixed", "catalog")


def probe(port: int, scenario: Scenario) -> str:
    """One request before the load: does the server answer as expected, and with what?"""
    body = scenario.body % 42 if scenario.vary_seed and scenario.body else scenario.body
    answer = request(port, scenario.method, scenario.path, body)
    note = f"{answer.status}, {len(answer.body)} B"
    if scenario.key.startswith("gen") and answer.status == 200:
        try:
            item = json.loads(answer.body)["data"][0]
            size = png_size(base64.b64decode(item["b64_json"]))
            note += f", b64_json PNG {size[0]}x{size[1]}" if size else ", b64_json is not a PNG"
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


def lua_script(scenario: Scenario, out: Path, stop_after: int = 0, seed_base: int = 0) -> str:
    """A wrk script: the request (a new seed per request when asked), status counting, a JSON summary."""
    body = scenario.body or ""
    lines = [
        f'wrk.method = "{scenario.method}"',
        f'wrk.headers["Authorization"] = "{AUTH}"',
    ]
    if scenario.body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        if not scenario.vary_seed:
            lines.append(f"wrk.body = [==[{body}]==]")
    lines += [
        "local threads = {}",
        "function setup(thread)",
        "  thread:set('tid', #threads)",
        "  table.insert(threads, thread)",
        "end",
        "tid = 0",
        "statuses = {}",
        "local seen = 0",
    ]
    if scenario.vary_seed:
        lines += [
            "local counter = 0",
            f"local template = [==[{body}]==]",
            "function request()",
            "  counter = counter + 1",
            f"  return wrk.format(nil, nil, nil, string.format(template, {seed_base} + tid * 1000000 + counter))",
            "end",
        ]
    lines += [
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


_INVOCATIONS = 0


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
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
    global _INVOCATIONS
    _INVOCATIONS += 1  # every run gets fresh seeds: a later round must not hit the render cache
    out = work / f"wrk-{scenario.key}-{time.monotonic_ns()}.json"
    script = work / f"{scenario.key}.lua"
    script.write_text(lua_script(scenario, out, stop_after, 100_000_000 + _INVOCATIONS * 10_000_000))
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
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return Load(
        requests=raw["requests"],
        seconds=duration,
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        expected=expected,
        unexpected=sum(statuses.values()) - expected,
        socket_errors=socket_errors,
        statuses=statuses,
    )


# -- servers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    key: str
    label: str
    argv: tuple[str, ...]  # "{port}" is replaced
    ready_timeout: float = 30.0


def mock_argv() -> list[str]:
    script = Path(sys.executable).parent / "nanogpt-mock"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "mockserver"]
    # a balance no run can spend: at ~15k generations/s the default 1000 USD lasts ten seconds, and the
    # 402s that follow would be measured instead of generations
    return [*head, "--port", "{port}", "--log-level", "warning", "--balance", "1000000000"]


def servers(skip_prism: bool) -> list[Server]:
    out = [
        Server("bare", "bare Starlette (ceiling)", (sys.executable, str(BENCH / "bare_app.py"), "--port", "{port}")),
        Server("mock", "nanogpt-mock", tuple(mock_argv())),
    ]
    if not skip_prism:
        prism = (str(PRISM_BIN), "mock", str(SPEC), "-p", "{port}", "-h", HOST, "--errors=false", "-v", "silent")
        out.append(Server("prism", "Stoplight Prism", prism, ready_timeout=90.0))
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
    rss_run: dict[str, Any] = field(default_factory=dict)
    render: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rps(self, server: str, scenario: str) -> float | None:
        for row in self.rows:
            if row.server == server and row.scenario == scenario:
                return row.load.rps
        return None


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
        expected=sum(x.expected for x in loads),
        unexpected=sum(x.unexpected for x in loads),
        socket_errors=sum(x.socket_errors for x in loads),
        statuses=statuses,
        rounds_rps=[x.rps for x in loads],
    )


@dataclass
class Running:
    server: Server
    proc: subprocess.Popen[bytes]
    port: int


def bench_servers(args: argparse.Namespace, work: Path, results: Results) -> None:
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


def rss_run(args: argparse.Namespace, work: Path, gen_rps: float | None) -> dict[str, Any]:
    """VmRSS of the mock before and after ``args.rss_requests`` fixed-seed generations (after a warm-up)."""
    scenario = SCENARIOS["gen_fixed"]
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in mock_argv()]
    proc = spawn(argv, log=work / "rss.log", cpu=args.server_cpu)
    try:
        wait_ready(proc, port, 30.0)
        rss_idle = group_rss_kib(proc.pid)
        run_wrk(port, scenario, WARMUP_S, args.connections, work, cpu=args.load_cpu)
        rss_before = group_rss_kib(proc.pid)
        rate = gen_rps or 1000.0
        seconds = min(args.rss_max_seconds, math.ceil(args.rss_requests / rate * 1.3) + 2)
        load = run_wrk(port, scenario, seconds, args.connections, work, cpu=args.load_cpu, stop_after=args.rss_requests)
        rss_after = group_rss_kib(proc.pid)
        return {
            "requests": load.requests,
            "unexpected": load.unexpected + load.socket_errors,
            "rss_idle_kib": rss_idle,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "growth": (rss_after - rss_before) / rss_before if rss_before else 0.0,
        }
    finally:
        stop(proc)


# -- tools ----------------------------------------------------------------------------------------
def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("bench: wrk is missing; install it (Debian: apt-get install -y wrk)")
    print("bench: installing wrk with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def ensure_prism() -> str | None:
    """Install Prism into bench/.tools/prism when missing; None when it can't be (then Prism is skipped)."""
    if not PRISM_BIN.exists():
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            return None
        print("bench: installing @stoplight/prism-cli with npm ...", flush=True)
        PRISM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PRISM_DIR),
                "--no-audit",
                "--no-fund",
                "--silent",
                "@stoplight/prism-cli@5",
            ],
            check=True,
        )
    version = subprocess.run([str(PRISM_BIN), "--version"], capture_output=True, text=True, timeout=60)
    return version.stdout.strip() or "unknown"


def tool_version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    os_name = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    import PIL
    import starlette
    import uvicorn

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "pillow": PIL.__version__,
        "wrk": tool_version(["wrk", "-v"]).split(" [")[0],
        "node": tool_version(["node", "--version"]) if shutil.which("node") else None,
    }


# -- output ---------------------------------------------------------------------------------------
HEADER = (
    f"{'server':<25} {'scenario':<34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'spread':>6} {'unexpected':>10} {'sock err':>8} {'RSS MiB':>13}"
)


def spread(load: Load) -> float:
    """(max - min) / mean of the per-round req/s: how steady the machine was for this row."""
    values = load.rounds_rps
    mean = statistics.fmean(values) if values else 0.0
    return (max(values) - min(values)) / mean if len(values) > 1 and mean > 0 else 0.0


def table_line(row: Row) -> str:
    load = row.load
    rss = f"{row.rss_before_kib / 1024:.0f} -> {row.rss_after_kib / 1024:.0f}"
    return (
        f"{row.server:<25} {row.label:<34} {load.rps:>8.0f} {load.p50_ms:>7.2f} {load.p99_ms:>7.2f} "
        f"{spread(load):>6.0%} {load.unexpected:>10} {load.socket_errors:>8} {rss:>13}"
    )


def check(
    results: Results, name: str, value: float | None, target: float, *, at_least: bool, unit: str, info: bool = False
) -> None:
    """Record one target. ``info`` rows are shown with their verdict but are not targets of the issue."""
    ok = None if value is None else (value >= target if at_least else value <= target)
    results.targets.append(
        {"target": name, "value": value, "goal": target, "pass": ok, "unit": unit, "at_least": at_least, "info": info}
    )


def evaluate(results: Results) -> None:
    mock = "nanogpt-mock"
    bare = "bare Starlette (ceiling)"
    prism = "Stoplight Prism"

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    gen, gen_vary = results.rps(mock, "gen_fixed"), results.rps(mock, "gen_vary")
    check(
        results,
        "generation (fixed seed) vs Prism, same request",
        ratio(gen, results.rps(prism, "gen_fixed")),
        TARGET_PRISM_X,
        at_least=True,
        unit="x",
    )
    check(
        results,
        "generation (new seed/request) vs Prism",
        ratio(gen_vary, results.rps(prism, "gen_vary")),
        TARGET_PRISM_X,
        at_least=True,
        unit="x",
        info=True,
    )
    check(
        results,
        "generation (fixed seed) / bare-Starlette ceiling",
        ratio(gen, results.rps(bare, "gen_fixed")),
        TARGET_GEN_OF_CEILING,
        at_least=True,
        unit="ratio",
    )
    check(
        results,
        "generation (new seed/request) / ceiling [every image rendered]",
        ratio(gen_vary, results.rps(bare, "gen_fixed")),
        TARGET_GEN_OF_CEILING,
        at_least=True,
        unit="ratio",
        info=True,
    )
    check(
        results,
        "catalog GET / bare-Starlette ceiling",
        ratio(results.rps(mock, "catalog"), results.rps(bare, "catalog")),
        TARGET_CATALOG_OF_CEILING,
        at_least=True,
        unit="ratio",
    )
    png = next((r for r in results.render if r["size"] == "1024x1024" and r["format"] == "png"), None)
    check(
        results,
        "1024x1024 PNG render, median",
        png["fresh_median_ms"] if png else None,
        TARGET_RENDER_MS,
        at_least=False,
        unit="ms",
    )
    check(
        results,
        "repeated identical request: image cost (cache hit), median",
        png["cached_median_ms"] if png else None,
        TARGET_CACHED_MS,
        at_least=False,
        unit="ms",
    )
    check(
        results,
        "cold start to first 200 (worst of runs)",
        max(results.cold_start_s) if results.cold_start_s else None,
        TARGET_COLD_START_S,
        at_least=False,
        unit="s",
    )
    growth = results.rss_run.get("growth")
    check(
        results,
        f"RSS growth over {results.rss_run.get('requests', 0)} requests",
        growth,
        TARGET_RSS_GROWTH,
        at_least=False,
        unit="ratio",
    )


def fmt_value(target: dict[str, Any]) -> str:
    value, unit = target["value"], target["unit"]
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.1f}x (goal >= {target['goal']:.0f}x)"
    if unit == "ratio" and target.get("at_least"):
        return f"{value:.0%} (goal >= {target['goal']:.0%})"
    if unit == "ratio":
        return f"{value:+.1%} (goal <= {target['goal']:.0%})"
    if unit == "ms":
        return f"{value:.3f} ms (goal <= {target['goal']} ms)"
    return f"{value:.3f} s (goal <= {target['goal']} s)"


def verdict(target: dict[str, Any]) -> str:
    word = "SKIP" if target["pass"] is None else ("PASS" if target["pass"] else "FAIL")
    return f"info: {word.lower()}" if target.get("info") else word


def print_summary(results: Results) -> None:
    print("\nTargets")
    for t in results.targets:
        print(f"  [{verdict(t)}] {t['target']}: {fmt_value(t)}")
    print("  (info rows: a fresh 1024x1024 image per request; reported beside the targets, not one of them)")
    if results.cold_start_s:
        runs = ", ".join(f"{s * 1000:.0f}" for s in results.cold_start_s)
        print(f"\ncold start (spawn -> first 200 on {CATALOG_PATH}), ms: {runs}")
    if results.startup_s:
        print("time to ready in the load runs: " + ", ".join(f"{k} {v:.2f}s" for k, v in results.startup_s.items()))
    if results.rss_run:
        r = results.rss_run
        print(
            f"RSS over {r['requests']} fixed-seed generations: idle {r['rss_idle_kib'] / 1024:.1f} MiB, after warm-up "
            f"{r['rss_before_kib'] / 1024:.1f} MiB, after {r['rss_after_kib'] / 1024:.1f} MiB ({r['growth']:+.1%}), "
            f"unexpected answers {r['unexpected']}"
        )
    for note in results.notes:
        print(f"note: {note}")


def markdown(results: Results) -> str:
    m = results.machine
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), {m['os']}, "
        f"Python {m['python']}, uvicorn {m['uvicorn']}, Starlette {m['starlette']}, {m['wrk']}"
        + (f", Prism {results.settings.get('prism')}" if results.settings.get("prism") else "")
        + f". Each server is one process pinned to one core; wrk `-t1 -c{results.settings['connections']}` on the "
        f"other core; {results.settings['duration']:.0f} s per row in {results.settings['rounds']} interleaved "
        f"rounds after a {WARMUP_S:.0f} s warm-up (spread: max-min of the rounds' req/s over their mean).",
        "",
        "| server | scenario | req/s | p50 ms | p99 ms | spread | unexpected | socket errs | RSS MiB start -> end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.rows:
        load = row.load
        lines.append(
            f"| {row.server} | {row.label} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
            f"{spread(load):.0%} | {load.unexpected} | {load.socket_errors} | {row.rss_before_kib / 1024:.0f} -> "
            f"{row.rss_after_kib / 1024:.0f} |"
        )
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for t in results.targets:
        lines.append(f"| {t['target']} | {fmt_value(t)} | {verdict(t)} |")
    if results.render:
        lines += [
            "",
            "| render | mock median ms | p90 ms | KiB | cached repeat µs | naive Pillow median ms | speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results.render:
            lines.append(
                f"| {r['size']} {r['format']} | {r['fresh_median_ms']:.2f} | {r['fresh_p90_ms']:.2f} | "
                f"{r['fresh_kib']:.1f} | {r['cached_median_ms'] * 1000:.1f} | {r['naive_median_ms']:.2f} | "
                f"{r['speedup']:.1f}x |"
            )
    if results.validation:
        lines += ["", "| validation / pipeline (in process) | median µs | p90 µs |", "|---|---:|---:|"]
        for r in results.validation:
            lines.append(f"| {r['case']} | {r['median_us']:.1f} | {r['p90_us']:.1f} |")
    extra = []
    if results.cold_start_s:
        extra.append("cold start to first 200: " + ", ".join(f"{s * 1000:.0f} ms" for s in results.cold_start_s))
    if results.rss_run:
        r = results.rss_run
        extra.append(
            f"RSS over {r['requests']:,} generations: {r['rss_before_kib'] / 1024:.1f} -> "
            f"{r['rss_after_kib'] / 1024:.1f} MiB ({r['growth']:+.1%})"
        )
    if extra:
        lines += ["", "; ".join(extra) + "."]
    for note in results.notes:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def write_results(results: Results) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = asdict(results)
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))
    print(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")


# -- micro-benchmarks -----------------------------------------------------------------------------
def micro(results: Results, budget_s: float) -> None:
    import bench_render
    import bench_validation

    print("\nRenderer (in process; fresh = new seed, cache off; naive = plain Pillow gradient + text + save)")
    print(
        f"{'size':>9} {'fmt':>4} | {'mock med':>8} {'p90':>6} {'KiB':>6} | {'cached':>8} | "
        f"{'naive med':>9} {'KiB':>6} | {'speed-up':>8}"
    )
    for r in bench_render.collect(budget_s):
        results.render.append(r)
        print(
            f"{r['size']:>9} {r['format']:>4} | {r['fresh_median_ms']:>8.2f} {r['fresh_p90_ms']:>6.2f} "
            f"{r['fresh_kib']:>6.1f} | {r['cached_median_ms'] * 1000:>6.1f}us | {r['naive_median_ms']:>9.2f} "
            f"{r['naive_kib']:>6.1f} | {r['speedup']:>7.1f}x",
            flush=True,
        )
    print("\nValidation and pipeline (in process, microseconds per request)")
    for r in bench_validation.collect(budget_s * 2 / 3):
        results.validation.append(r)
        print(f"  {r['case']:<52} median {r['median_us']:>8.1f}  p90 {r['p90_us']:>8.1f}", flush=True)


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the mock beside a bare Starlette app and Prism.")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per scenario [10]")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the duration is split into [3]")
    parser.add_argument("--skip-prism", action="store_true", help="leave Prism out (no npm needed)")
    parser.add_argument("--skip-micro", action="store_true", help="leave out the in-process micro-benchmarks")
    parser.add_argument("--rss-requests", type=int, default=50_000, help="requests of the RSS run [50000]")
    parser.add_argument("--rss-max-seconds", type=float, default=60.0, help="cap on the RSS run [60]")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold-start measurements [3]")
    parser.add_argument("--micro-budget", type=float, default=1.0, help="seconds per micro-benchmark case [1]")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to cores")
    args = parser.parse_args(argv)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    args.server_cpu, args.load_cpu = (0, 1) if pin else (None, None)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    # Ctrl-C and SIGTERM both unwind through the finally that stops every started process group
    # (SIGINT explicitly too: a shell that starts us in the background would otherwise leave it ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    ensure_wrk()
    prism_version = None
    if not args.skip_prism:
        prism_version = ensure_prism()
        if prism_version is None:
            print("bench: node/npm not found; Prism is skipped", file=sys.stderr)
            args.skip_prism = True
    results = Results(
        machine=machine_info(),
        settings={
            "duration": args.duration,
            "connections": args.connections,
            "warmup_s": WARMUP_S,
            "pinned": args.server_cpu is not None,
            "prism": prism_version,
            "rss_requests": args.rss_requests,
            "rounds": args.rounds,
        },
    )
    m = results.machine
    print(
        f"{m['date']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
        f"{m['wrk']}" + (f", Prism {prism_version}" if prism_version else "")
    )
    print(
        f"wrk -t1 -c{args.connections}, {args.duration:.0f}s per row in {args.rounds} interleaved rounds after "
        f"{WARMUP_S:.0f}s warm-up; servers "
        + ("pinned to CPU 0, wrk to CPU 1" if args.server_cpu is not None else "not pinned")
        + "\n"
    )
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="nanogpt-bench-") as tmp:
            work = Path(tmp)
            bench_servers(args, work, results)
            results.cold_start_s = cold_start(args, work, args.cold_starts)
            results.rss_run = rss_run(args, work, results.rps("nanogpt-mock", "gen_fixed"))
        if not args.skip_prism:
            prism_probe = next(
                (r.probe for r in results.rows if r.server == "Stoplight Prism" and r.scenario == "gen_fixed"), None
            )
            if prism_probe:
                results.notes.append(
                    f"Prism answers the generation request with the spec's static example ({prism_probe}); "
                    "it renders no image and ignores the seed, so its two generation rows are the same work."
                )
        if not args.skip_micro:
            micro(results, args.micro_budget)
        evaluate(results)
        print_summary(results)
        write_results(results)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
    print(f"total {time.perf_counter() - began:.0f}s")
    failed = [t for t in results.targets if t["pass"] is False and not t.get("info")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
