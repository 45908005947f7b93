"""What several verbs share: building the client and the caller's runtime from flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from kreg.client import Client
from kreg.model import Runtime, Toolchain
from kreg.runtime import local_toolchain


def runtime_for(platform: str, toolchain_flag: str | None) -> Runtime:
    """--toolchain VERSION/BACKEND, else the installed triton (read from package metadata,
    so the CLI never imports triton), else a runtime that can only take source or reference."""
    if toolchain_flag:
        version, sep, backend = toolchain_flag.partition("/")
        if not sep or not version or not backend:
            raise ValueError(f"--toolchain: want TRITON_VERSION/BACKEND, e.g. 3.6.0/cuda, got {toolchain_flag!r}")
        return Runtime(Toolchain(version, backend))
    return Runtime(local_toolchain(platform))


def client_for(args: argparse.Namespace, runtime: Runtime = Runtime(), cache_dir: Path | None = None) -> Client:
    return Client(args.registry, timeout_s=args.timeout, runtime=runtime, cache_dir=cache_dir)
