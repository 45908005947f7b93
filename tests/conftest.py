"""Shared fixtures: a real registry on loopback, in a thread with its own event loop, so
the synchronous client (and the CLI) can call it from the test thread."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from registry.core import RegistryLimits
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig


def start_test_server(data_dir: Path, **limits: float) -> EmbeddedRegistry:
    return EmbeddedRegistry(
        ServerConfig(
            data_dir=data_dir,
            listen="127.0.0.1:0",
            limits=RegistryLimits(reap_interval_s=0.1, **limits),  # type: ignore[arg-type]
            max_receive_bytes=8 << 20,
        )
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRegistry]:
    srv = start_test_server(tmp_path / "registry")
    yield srv
    srv.stop()
