"""Processes the bench starts, and plain HTTP probes of them.

Every process gets its own process group, so it and its children are stopped together; ``stop_all`` (run in
``finally`` by ``run.py``) leaves nothing behind, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
AUTH = "Bearer bench-key"
CATALOG_PATH = "/api/v1/images/models"

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


def request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    timeout: float = 10.0,
    content_type: str = "application/json",
) -> Answer:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": AUTH}
        if body is not None:
            headers["Content-Type"] = content_type
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
