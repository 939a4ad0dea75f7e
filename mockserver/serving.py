"""Run the mock on a real uvicorn socket in a background thread (tests, the pytest plugin, contracts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class ServerThread:
    """A uvicorn server on a free loopback port, started and stopped explicitly."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
        self.server = uvicorn.Server(self.config)
        self._thread = threading.Thread(target=self.server.run, name="nanogpt-mock", daemon=True)
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the mock server did not start on {self.host}:{self.config.port}")
            time.sleep(0.01)
        sockets = [s for server in self.server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)


@contextmanager
def serve(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[ServerThread]:
    """``with serve(create_app()) as server: httpx.get(server.base_url + ...)``."""
    thread = ServerThread(app, host, port).start()
    try:
        yield thread
    finally:
        thread.stop()
