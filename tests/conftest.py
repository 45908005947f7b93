"""Shared fixtures: a real registry on loopback, in a thread with its own event loop, so
the synchronous client (and the CLI) can call it from the test thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Iterator

import pytest

from registry.core import RegistryLimits
from registry.server import RunningServer, ServerConfig, start_server


class ServerThread:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="registry", daemon=True)
        self._thread.start()
        self.running: RunningServer = self.call(start_server(config))

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        self.call(self.running.stop(grace_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def start_test_server(data_dir: Path, **limits: float) -> ServerThread:
    return ServerThread(
        ServerConfig(
            data_dir=data_dir,
            listen="127.0.0.1:0",
            limits=RegistryLimits(reap_interval_s=0.1, **limits),  # type: ignore[arg-type]
            max_receive_bytes=8 << 20,
        )
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = start_test_server(tmp_path / "registry")
    yield srv
    srv.stop()
