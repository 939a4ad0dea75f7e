"""What a run means: the targets (a data table), the console summary, results/latest.{json,md}."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

from load import BARE, MOCK, PRISM, SCENARIOS, WARMUP_S, Load, Results, Row
from processes import BENCH, CATALOG_PATH

RESULTS = BENCH / "results"


def vs_prism(results: Results, scenario: str) -> float | None:
    """The mock's req/s over Prism's for the same request, from the same run."""
    return _ratio(results.rps(MOCK, scenario), results.rps(PRISM, scenario))


def vs_ceiling(results: Results, scenario: str) -> float | None:
    """The mock's req/s over the bare Starlette app's (a POST row against its POST, GET against GET)."""
    ceiling = "catalog" if SCENARIOS[scenario].method == "GET" else "gen_fixed"
    return _ratio(results.rps(MOCK, scenario), results.rps(BARE, ceiling))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _render(results: Results, size: str, fmt: str, field: str) -> float | None:
    row = next((r for r in results.render if r["size"] == size and r["format"] == fmt), None)
    return None if row is None else float(row[field])


def _rss_mib(results: Results, scenario: str) -> float | None:
    run = results.rss_runs.get(scenario)
    return None if run is None else run["rss_after_kib"] / 1024


@dataclass(frozen=True)
class Target:
    """One goal: ``measure`` reads it off the results; ``info`` rows are shown but are nobody's target."""

    name: str
    goal: float
    unit: str  # "x" (ratio to Prism), "ratio", "ms", "s", "MiB"
    at_least: bool
    measure: Callable[[Results], float | None]
    info: bool = False


TARGETS: tuple[Target, ...] = (
    # issue 13: the default (unseeded) request at least 3x Prism (1x is the minimum acceptable)
    Target("unseeded b64 generation vs Prism", 3.0, "x", True, lambda r: vs_prism(r, "gen_b64")),
    Target("unseeded url generation vs Prism", 3.0, "x", True, lambda r: vs_prism(r, "gen_url")),
    Target("unseeded JPEG generation vs Prism", 1.0, "x", True, lambda r: vs_prism(r, "gen_jpeg")),
    Target("unseeded WebP generation vs Prism", 1.0, "x", True, lambda r: vs_prism(r, "gen_webp")),
    Target("edit (unseeded) vs Prism", 1.0, "x", True, lambda r: vs_prism(r, "edit")),
    Target("fixed-seed generation vs Prism", 3.0, "x", True, lambda r: vs_prism(r, "gen_fixed")),
    Target("fixed-seed generation / bare-Starlette ceiling", 0.5, "ratio", True, lambda r: vs_ceiling(r, "gen_fixed")),
    Target("unseeded b64 generation / ceiling", 0.5, "ratio", True, lambda r: vs_ceiling(r, "gen_b64"), info=True),
    Target("catalog GET / bare-Starlette ceiling", 0.8, "ratio", True, lambda r: vs_ceiling(r, "catalog")),
    Target(
        "500 concurrent unseeded generations, median",
        0.5,
        "s",
        False,
        lambda r: r.concurrency.get("p50_s"),
    ),
    Target("RSS after 50k unseeded b64 generations", 150.0, "MiB", False, lambda r: _rss_mib(r, "gen_b64")),
    Target("RSS after 50k unseeded url generations", 150.0, "MiB", False, lambda r: _rss_mib(r, "gen_url")),
    Target(
        "RSS growth over 50k fixed-seed generations",
        0.10,
        "ratio",
        False,
        lambda r: r.rss_runs["gen_fixed"]["growth"] if "gen_fixed" in r.rss_runs else None,
    ),
    Target(
        "1024x1024 PNG render, new seed, median",
        3.0,
        "ms",
        False,
        lambda r: _render(r, "1024x1024", "png", "fresh_median_ms"),
    ),
    Target(
        "repeated identical request: image cost (cache hit), median",
        0.1,
        "ms",
        False,
        lambda r: _render(r, "1024x1024", "png", "cached_median_ms"),
    ),
    Target(
        "cold start to first 200 (worst of runs)",
        1.0,
        "s",
        False,
        lambda r: max(r.cold_start_s) if r.cold_start_s else None,
    ),
)


def evaluate(results: Results) -> None:
    for target in TARGETS:
        value = target.measure(results)
        ok = None if value is None else (value >= target.goal if target.at_least else value <= target.goal)
        results.targets.append(
            {
                "target": target.name,
                "value": value,
                "goal": target.goal,
                "pass": ok,
                "unit": target.unit,
                "at_least": target.at_least,
                "info": target.info,
            }
        )


# -- console ----------------------------------------------------------------------------------------
HEADER = (
    f"{'server':<25} {'scenario':<38} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
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
        f"{row.server:<25} {row.label:<38} {load.rps:>8.0f} {load.p50_ms:>7.2f} {load.p99_ms:>7.2f} "
        f"{spread(load):>6.0%} {load.unexpected:>10} {load.socket_errors:>8} {rss:>13}"
    )


def fmt_value(target: dict[str, object]) -> str:
    value, unit, goal = target["value"], target["unit"], target["goal"]
    if not isinstance(value, int | float) or not isinstance(goal, int | float):
        return "n/a"
    if unit == "x":
        return f"{value:.1f}x (goal >= {goal:.0f}x)"
    if unit == "ratio" and target.get("at_least"):
        return f"{value:.0%} (goal >= {goal:.0%})"
    if unit == "ratio":
        return f"{value:+.1%} (goal <= {goal:.0%})"
    if unit == "ms":
        return f"{value:.3f} ms (goal <= {goal} ms)"
    if unit == "MiB":
        return f"{value:.0f} MiB (goal <= {goal:.0f} MiB)"
    return f"{value:.3f} s (goal <= {goal} s)"


def verdict(target: dict[str, object]) -> str:
    word = "SKIP" if target["pass"] is None else ("PASS" if target["pass"] else "FAIL")
    return f"info: {word.lower()}" if target.get("info") else word


def _rss_line(r: dict[str, object], unit: int = 1024) -> str:
    before, after = float(r["rss_before_kib"]) / unit, float(r["rss_after_kib"]) / unit  # type: ignore[arg-type]
    return f"{r['requests']:,} {SCENARIOS[str(r['scenario'])].label[5:]}: {before:.1f} -> {after:.1f} MiB"


def print_summary(results: Results) -> None:
    ratios = ratio_lines(results)
    if ratios:
        print("\nmock rows: vs Prism (same request) and vs the bare-Starlette ceiling")
        for line in ratios:
            print("  " + line)
    print("\nTargets")
    for t in results.targets:
        print(f"  [{verdict(t)}] {t['target']}: {fmt_value(t)}")
    if results.cold_start_s:
        runs = ", ".join(f"{s * 1000:.0f}" for s in results.cold_start_s)
        print(f"\ncold start (spawn -> first 200 on {CATALOG_PATH}), ms: {runs}")
    if results.startup_s:
        print("time to ready in the load runs: " + ", ".join(f"{k} {v:.2f}s" for k, v in results.startup_s.items()))
    for run in results.rss_runs.values():
        print(f"RSS over {_rss_line(run)} (unexpected answers {run['unexpected']})")
    if results.concurrency:
        c = results.concurrency
        print(
            f"{c['connections']} concurrent unseeded generations: median {c['p50_s']:.3f} s, mean {c['mean_s']:.3f} s, "
            f"p99 {c['p99_s']:.3f} s, "
            f"{c['rps']:.0f} req/s, unexpected {c['unexpected']}, socket errors {c['socket_errors']}"
        )
    for note in results.notes:
        print(f"note: {note}")


def ratio_lines(results: Results) -> list[str]:
    out = []
    for row in results.rows:
        if row.server != MOCK:
            continue
        p, c = vs_prism(results, row.scenario), vs_ceiling(results, row.scenario)
        out.append(
            f"{row.label}: {row.load.rps:,.0f} req/s, "
            + (f"{p:.2f}x Prism" if p is not None else "Prism n/a")
            + ", "
            + (f"{c:.0%} of the ceiling" if c is not None else "ceiling n/a")
        )
    return out


# -- files ------------------------------------------------------------------------------------------
def markdown(results: Results) -> str:
    m = results.machine
    s = results.settings
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), {m['os']}, "
        f"Python {m['python']}, uvicorn {m['uvicorn']}, Starlette {m['starlette']}, {m['wrk']}"
        + (f", Prism {s.get('prism')}" if s.get("prism") else "")
        + f". Each server is one process pinned to one core; wrk `-t1 -c{s['connections']}` on the "
        f"other core; {s['duration']:.0f} s per row in {s['rounds']} interleaved "
        f"rounds after a {WARMUP_S} s warm-up (spread: max-min of the rounds' req/s over their mean).",
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
    mock_rows = [row for row in results.rows if row.server == MOCK]
    if mock_rows:
        lines += ["", "| nanogpt-mock scenario | req/s | vs Prism | of the ceiling |", "|---|---:|---:|---:|"]
        for row in mock_rows:
            p, c = vs_prism(results, row.scenario), vs_ceiling(results, row.scenario)
            lines.append(
                f"| {row.label} | {row.load.rps:,.0f} | {'n/a' if p is None else f'{p:.2f}x'} | "
                f"{'n/a' if c is None else f'{c:.0%}'} |"
            )
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for t in results.targets:
        lines.append(f"| {t['target']} | {fmt_value(t)} | {verdict(t)} |")
    if results.render:
        lines += [
            "",
            "| render (new seed per call) | mock median ms | p90 ms | KiB | cached repeat µs | naive Pillow median ms "
            "| speed-up |",
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
    extra += [f"RSS over {_rss_line(run)}" for run in results.rss_runs.values()]
    if results.concurrency:
        burst = results.concurrency
        extra.append(
            f"{burst['connections']} concurrent unseeded generations: median {burst['p50_s']:.3f} s, "
            f"mean {burst['mean_s']:.3f} s, p99 {burst['p99_s']:.3f} s"
        )
    if extra:
        lines += ["", "; ".join(extra) + "."]
    for note in results.notes:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def write_results(results: Results) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(asdict(results), indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))
    print(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")
