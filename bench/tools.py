"""The tools the bench needs and the machine it runs on: wrk (apt), Prism (npm), versions.

Installs only what is missing: ``wrk`` from Debian as root, ``@stoplight/prism-cli@5`` into
``bench/.tools/prism`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from processes import BENCH

TOOLS = BENCH / ".tools"
PRISM_DIR = TOOLS / "prism"
PRISM_BIN = PRISM_DIR / "node_modules" / ".bin" / "prism"


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
