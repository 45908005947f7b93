"""What this host can load without compiling: its Triton version and the backend for a platform.

Read from package metadata, so nothing imports triton to find out.
"""

from __future__ import annotations

import importlib.metadata

from kreg.model import Toolchain

# The Triton backend that loads binaries for each platform.
BACKENDS = {"nvidia": "cuda", "amd": "hip", "cpu": "cpu", "mtia": "mtia"}


def local_toolchain(platform: str) -> Toolchain | None:
    """The installed triton with the platform's backend; None without triton (such a host
    can take source for a JIT elsewhere, or the reference)."""
    try:
        version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Toolchain(version, BACKENDS[platform])
