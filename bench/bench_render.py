"""Micro-benchmark of mockserver.render against a naive Pillow renderer, measured in the same process.

Run: ``python bench/bench_render.py``. Prints median/p90 ms per image for fresh renders (a new seed every
call, nothing kept: what an unseeded request costs once the seed-independent pieces of its size, model
and prompt are warm; seeds are 10-digit like most of the 32-bit seeds an unseeded request draws), the
cached repeated-request time, and the naive baseline (gradient + text + default ``save``) with the
speed-up. The "edit" row is an unseeded edit of a 256x256 PNG (PNG out), against a plain Pillow edit
(decode, posterise, blend, hatch, label, save). Each case runs for a fixed time budget (< 60 s in all).
"""

from __future__ import annotations

import io
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import PIL
from PIL import Image, ImageDraw, ImageFont, ImageOps

from mockserver.render import OUTPUT_FORMATS, OutputFormat, Renderer, RenderRequest

SIZES = ((1024, 1024), (2048, 2048))
BUDGET_S = 1.5  # per measured case
MIN_RUNS, MAX_RUNS = 7, 400
MODEL = "black-forest-labs/flux-1.1-pro-ultra"
SEED0 = 3_000_000_000  # fresh seeds: SEED0 + i
WARM_CALLS = 300  # the mock's warm-up: backgrounds, seed lengths and (JPEG) hues seen by a running server
PROMPT = "a lighthouse on a cliff at dusk, volumetric light, 35mm"


def measure(fn: Callable[[int], bytes], warm: int = 2) -> tuple[float, float, int]:
    """(median ms, p90 ms, output bytes); i varies per call so nothing is served from a cache."""
    for i in range(warm):  # warm-up: fonts, pieces, code paths (seeds the measured calls never use)
        fn(SEED0 + 500_000_000 + i)
    times: list[float] = []
    size = 0
    started = time.perf_counter()
    i = 0
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - started < BUDGET_S):
        t0 = time.perf_counter()
        size = len(fn(i))
        times.append((time.perf_counter() - t0) * 1000)
        i += 1
    return statistics.median(times), statistics.quantiles(times, n=10)[-1], size


def naive(width: int, height: int, fmt: OutputFormat, seed: int) -> bytes:
    """What one would write first: full-size gradients, ImageDraw text, Pillow's default save options."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    blue = Image.new("L", (width, height), seed % 256)
    image = Image.merge("RGB", (red, green, blue))
    font = ImageFont.load_default(size=max(10, width // 24))
    ImageDraw.Draw(image).text(
        (width // 10, height // 2), f"{MODEL}\n{width}x{height} seed {seed}", fill="white", font=font
    )
    buffer = io.BytesIO()
    image.save(buffer, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt])
    return buffer.getvalue()


def collect(budget_s: float = BUDGET_S) -> Iterator[dict[str, Any]]:
    """One row per (size, format): fresh/cached/naive timings. Yields as it goes (the harness prints live)."""
    global BUDGET_S
    saved, BUDGET_S = BUDGET_S, budget_s
    try:
        fresh = Renderer()
        cached = Renderer()
        for width, height in SIZES:
            for fmt in OUTPUT_FORMATS:

                def mock(i: int, width: int = width, height: int = height, fmt: OutputFormat = fmt) -> bytes:
                    return fresh.render(RenderRequest(MODEL, PROMPT, width, height, SEED0 + i, 0, fmt), cache=False)

                def repeat(_: int, width: int = width, height: int = height, fmt: OutputFormat = fmt) -> bytes:
                    return cached.render(RenderRequest(MODEL, PROMPT, width, height, 42, 0, fmt))

                def base(i: int, width: int = width, height: int = height, fmt: OutputFormat = fmt) -> bytes:
                    return naive(width, height, fmt, i)

                yield row(f"{width}x{height}", fmt, mock, repeat, base)
        yield edit_row(fresh, cached)
    finally:
        BUDGET_S = saved


def edit_source(side: int = 256) -> bytes:
    """The load's edit input: a smooth gradient PNG."""
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((side, side)),
            Image.linear_gradient("L").rotate(90).resize((side, side)),
            Image.new("L", (side, side), 96),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def naive_edit(source: bytes, seed: int) -> bytes:
    """A plain Pillow edit: decode, posterise, blend with a tint, hatch, a text label, save."""
    src = Image.open(io.BytesIO(source)).convert("RGB")
    tint = Image.new("RGB", src.size, (seed % 256, 80, 160))
    edited = Image.blend(ImageOps.posterize(src, 3), tint, 0.45)
    hatch = Image.new("L", src.size, 0)
    draw = ImageDraw.Draw(hatch)
    for x in range(-src.height, src.width, 24):
        draw.line([(x, src.height), (x + src.height, 0)], fill=255, width=4)
    edited = Image.composite(Image.new("RGB", src.size, (255 - seed % 256, 175, 95)), edited, hatch)
    font = ImageFont.load_default(size=12)
    ImageDraw.Draw(edited).text((8, src.height // 2), f"{MODEL}\nseed {seed}", fill="white", font=font)
    buffer = io.BytesIO()
    edited.save(buffer, "PNG")
    return buffer.getvalue()


def row(
    size: str,
    fmt: str,
    mock: Callable[[int], bytes],
    repeat: Callable[[int], bytes],
    naive_call: Callable[[int], bytes],
) -> dict[str, Any]:
    """One table row: the mock fresh (warmed up like a running server) and repeated, beside naive Pillow."""
    m_med, m_p90, m_size = measure(mock, WARM_CALLS)
    c_med, _, _ = measure(repeat)
    n_med, n_p90, n_size = measure(naive_call)
    return {
        "size": size,
        "format": fmt,
        "fresh_median_ms": m_med,
        "fresh_p90_ms": m_p90,
        "fresh_kib": m_size / 1024,
        "cached_median_ms": c_med,
        "naive_median_ms": n_med,
        "naive_p90_ms": n_p90,
        "naive_kib": n_size / 1024,
        "speedup": n_med / m_med,
    }


def edit_row(fresh: Renderer, cached: Renderer) -> dict[str, Any]:
    source = edit_source()

    def mock(i: int) -> bytes:
        return fresh.render_edit(RenderRequest(MODEL, PROMPT, 256, 256, SEED0 + i), source, cache=False)

    def repeat(_: int) -> bytes:
        return cached.render_edit(RenderRequest(MODEL, PROMPT, 256, 256, 42), source)

    return row("256x256", "edit", mock, repeat, lambda i: naive_edit(source, i))


def main() -> None:
    began = time.perf_counter()
    print(f"Python {platform.python_version()}, Pillow {PIL.__version__}, {platform.machine()}")
    print(f"budget {BUDGET_S}s per case, min {MIN_RUNS} runs; fresh = new seed per call, nothing kept\n")
    header = (
        f"{'size':>9} {'fmt':>4} | {'fresh med':>9} {'p90':>7} {'KiB':>6} | {'cached':>7} | "
        f"{'naive med':>9} {'p90':>7} {'KiB':>6} | {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in collect():
        print(
            f"{row['size']:>9} {row['format']:>4} | {row['fresh_median_ms']:>9.2f} {row['fresh_p90_ms']:>7.2f} "
            f"{row['fresh_kib']:>6.1f} | {row['cached_median_ms'] * 1000:>5.1f}us | {row['naive_median_ms']:>9.2f} "
            f"{row['naive_p90_ms']:>7.2f} {row['naive_kib']:>6.1f} | {row['speedup']:>7.1f}x"
        )
    print(f"\ntimes in ms unless marked; total {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
