"""Figures for issue 10 (not a test): how fast a decompression bomb is refused, how long another client's
catalog request takes meanwhile and while a heavy (allowed) edit runs, and peak memory.

    .venv/bin/python bench/robustness.py

Starts one mock on a loopback socket (mockserver.serving) in this process; prints the figures.
"""

from __future__ import annotations

import io
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mockserver import create_app
from mockserver.serving import serve

AUTH = {"Authorization": "Bearer bench-key"}


def png(width: int, height: int, mode: str = "1") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def catalog_latencies(base: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=base) as c:
        while not stop.is_set():
            started = time.perf_counter()
            c.get("/api/v1/images/models")
            out.append(time.perf_counter() - started)


def while_running(base: str, label: str, send: object) -> None:
    stop, latencies = threading.Event(), []  # type: ignore[var-annotated]
    watcher = threading.Thread(target=catalog_latencies, args=(base, stop, latencies))
    watcher.start()
    time.sleep(0.2)
    started = time.perf_counter()
    status = send()  # type: ignore[operator]
    took = time.perf_counter() - started
    stop.set()
    watcher.join()
    print(
        f"{label}: answered {status} in {took * 1000:.0f} ms; catalog requests meanwhile: {len(latencies)}, "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def main() -> None:
    bomb = png(8192, 8192)
    heavy = png(3000, 3000, "RGB")
    with serve(create_app()) as server, httpx.Client(base_url=server.base_url, timeout=120) as c:
        print(f"bomb: {len(bomb)} bytes declaring 8192x8192")

        def send_bomb() -> int:
            files = {"image": ("bomb.png", bomb, "image/png")}
            return c.post("/api/v1/images/edits", data={"prompt": "p"}, files=files, headers=AUTH).status_code

        def send_heavy() -> int:
            files = {"image": ("big.png", heavy, "image/png")}
            return c.post("/api/v1/images/edits", data={"prompt": "p"}, files=files, headers=AUTH).status_code

        while_running(server.base_url, "bomb edit (8192x8192 declared)", send_bomb)
        while_running(server.base_url, "heavy allowed edit (3000x3000)", send_heavy)
    with open("/proc/self/status") as status:  # VmHWM: this process's own peak
        peak = int(status.read().split("VmHWM:")[1].split()[0]) / 1024
    print(f"peak RSS of this process (server + clients): {peak:.0f} MB")


if __name__ == "__main__":
    main()
