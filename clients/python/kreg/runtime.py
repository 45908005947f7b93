"""What this host can load without compiling: its Triton version and the backend for a platform.

Read from package metadata, so nothing imports triton to find out.
"""

from __future__ import annotations

import functools
import importlib.metadata

from kreg.model import Toolchain

# The Triton backend that loads binaries for each platform.
BACKENDS = {"nvidia": "cuda", "amd": "hip", "cpu": "cpu", "mtia": "mtia"}


@functools.cache
def installed_triton() -> str | None:
    """The installed triton's version, None without one. Read once: a package lookup scans
    every distribution on sys.path (about a millisecond here), and every binary load asks."""
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None


def local_toolchain(platform: str) -> Toolchain | None:
    """The installed triton with the platform's backend; None without triton (such a host
    can take source for a JIT elsewhere, or the reference)."""
    version = installed_triton()
    return None if version is None else Toolchain(version, BACKENDS[platform])
