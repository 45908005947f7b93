"""Builders shared by the store tests: keys, artifacts with their blobs, workers, a store."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    BlobData,
    Capability,
    Digest,
    EvidenceTier,
    KernelBinary,
    Target,
    Toolchain,
    WorkerInfo,
)

from registry.store import Store

KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}")
T0 = 1_700_000_000.0


def open_store(
    path: Path, *, map_size: int = 64 << 20, max_blob_bytes: int = 256 << 20, max_attempts: int = 3
) -> Store:
    """A store for tests: unsynced (the crash test checks synced durability separately)."""
    return Store.open(
        path, map_size=map_size, sync=False, max_blob_bytes=max_blob_bytes, max_attempts=max_attempts
    )


def blob(data: bytes) -> BlobData:
    return BlobData(Digest(hashlib.sha256(data).hexdigest(), len(data)), data)


def artifact(key: KernelKey = KEY, *, seed: str = "v1") -> tuple[Artifact, list[BlobData]]:
    """An artifact with a source and a binary blob; `seed` makes its content (and id) unique."""
    source = blob(f"@triton.jit\ndef kernel_{seed}(): pass\n".encode())
    binary = blob(f"cubin for {key} {seed}".encode())
    kernel = KernelBinary(
        name="main",
        entry_point=f"kernel_{seed}",
        source=source.digest,
        binary=binary.digest,
        binary_format="cubin",
    )
    art = Artifact(
        key=key,
        kernels=(kernel,),
        target=Target(backend="cuda", arch=key.arch, warp_size=32),
        toolchain=Toolchain("3.6.0", "cuda"),
        tier=EvidenceTier.TUNED,
    )
    return art, [source, binary]


def worker(*capabilities: str, worker_id: str = "w1") -> WorkerInfo:
    """A worker serving 'platform/arch' pairs, e.g. worker('nvidia/sm_90', '*/*')."""
    return WorkerInfo(worker_id, tuple(Capability(*c.split("/")) for c in capabilities))
