"""The registry in a background thread with its own event loop, on a loopback port: for
`kreg demo`, benchmarks and tests, where synchronous code in the main thread calls it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

from registry.server import RunningServer, ServerConfig, start_server

T = TypeVar("T")


class EmbeddedRegistry:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="registry", daemon=True)
        self._thread.start()
        self.running: RunningServer = self.call(start_server(config))

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        """Run a coroutine on the registry's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout_s)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        self.call(self.running.stop(grace_s))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> "EmbeddedRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
