"""The benchmark harness: the mock beside a bare Starlette ceiling and Stoplight Prism, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--connections 32] [--skip-prism] [--skip-micro]

The jobs live in their own modules: ``processes`` (start, stop, probe, RSS), ``tools`` (wrk, Prism, machine
facts), ``load`` (scenarios, wrk runs, the interleaved server rounds, cold start, RSS and concurrency runs)
and ``report`` (the targets table, console summary, ``results/latest.{json,md}``). This file runs them in
order and exits 1 when a target fails. Nothing but 127.0.0.1 is contacted (apart from the package installs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import MOCK, PRISM, WARMUP_S, Results, bench_servers, cold_start, concurrency_run, rss_run
from processes import stop_all
from report import HEADER, evaluate, print_summary, table_line, write_results
from tools import ensure_prism, ensure_wrk, machine_info


def micro(results: Results, budget_s: float) -> None:
    """The renderer and validation micro-benchmarks, in this process."""
    import bench_render
    import bench_validation

    print("\nRenderer (in process; fresh = new seed per call; naive = plain Pillow gradient + text + save)")
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the mock beside a bare Starlette app and Prism.")
    parser.add_argument("--duration", type=float, default=9.0, help="seconds of load per scenario [9]")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the duration is split into [3]")
    parser.add_argument("--skip-prism", action="store_true", help="leave Prism out (no npm needed)")
    parser.add_argument("--skip-micro", action="store_true", help="leave out the in-process micro-benchmarks")
    parser.add_argument("--rss-requests", type=int, default=50_000, help="requests of each RSS run [50000]")
    parser.add_argument("--rss-max-seconds", type=float, default=60.0, help="cap on each RSS run [60]")
    parser.add_argument("--concurrency", type=int, default=500, help="connections of the burst run [500]")
    parser.add_argument("--concurrency-seconds", type=float, default=5.0, help="length of the burst run [5]")
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
            "concurrency": args.concurrency,
        },
    )
    m = results.machine
    print(
        f"{m['date']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
        f"{m['wrk']}" + (f", Prism {prism_version}" if prism_version else "")
    )
    print(
        f"wrk -t1 -c{args.connections}, {args.duration:.0f}s per row in {args.rounds} interleaved rounds after "
        f"{WARMUP_S}s warm-up; servers "
        + ("pinned to CPU 0, wrk to CPU 1" if args.server_cpu is not None else "not pinned")
        + "\n"
    )
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="nanogpt-bench-") as tmp:
            work = Path(tmp)
            bench_servers(args, work, results, table_line)
            results.cold_start_s = cold_start(args, work, args.cold_starts)
            for scenario in ("gen_b64", "gen_url", "gen_fixed"):
                print(f"  RSS run: {scenario} ...", file=sys.stderr, flush=True)
                results.rss_runs[scenario] = rss_run(args, work, scenario, results.rps(MOCK, scenario))
            print(f"  {args.concurrency} concurrent connections ...", file=sys.stderr, flush=True)
            results.concurrency = concurrency_run(args, work, args.concurrency, args.concurrency_seconds)
        if not args.skip_prism:
            prism_probe = next((r.probe for r in results.rows if r.server == PRISM and r.scenario == "gen_b64"), None)
            if prism_probe:
                results.notes.append(
                    f"Prism answers every generation request with the spec's static example ({prism_probe}); "
                    "it renders no image and ignores seed, format and size, so its generation rows are the same "
                    "work."
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
