"""Builders for test artifacts: real bytes with real digests (the registry never
interprets binaries, so random bytes stand in for a cubin here)."""

from __future__ import annotations

import hashlib
import os

from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    BlobData,
    Digest,
    EvidenceTier,
    KernelBinary,
    LaunchAbi,
    LaunchParam,
    Measurements,
    ShapeMeasurement,
    Target,
    Toolchain,
    TuningShape,
    Verdict,
    WorkerInfo,
    Capability,
)

KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}")
TRITON_36 = Toolchain("3.6.0", "cuda")
TRITON_39 = Toolchain("3.9.0", "cuda")
WORKER = WorkerInfo("worker-a", (Capability("nvidia", "sm_90"),), TRITON_36)


def blob(data: bytes) -> BlobData:
    return BlobData(Digest(hashlib.sha256(data).hexdigest(), len(data)), data)


def make_artifact(
    key: KernelKey = KEY,
    *,
    toolchain: Toolchain = TRITON_36,
    tier: EvidenceTier = EvidenceTier.TUNED,
    median_ms: float | None = 0.05,
    verdict: Verdict = Verdict.USE_KERNEL,
    with_binary: bool = True,
    binary_size: int = 4096,
) -> tuple[Artifact, list[BlobData]]:
    source = blob(b"@triton.jit\ndef jagged_sum_kernel(...): ...\n" + os.urandom(8).hex().encode())
    blobs = [source]
    binary = metadata = None
    if with_binary:
        binary, metadata = blob(os.urandom(binary_size)), blob(b'{"name": "jagged_sum_kernel"}')
        blobs += [binary, metadata]
    measurements = Measurements()
    if median_ms is not None:
        measurements = Measurements(
            shapes=(ShapeMeasurement(TuningShape({"B": 2048, "L": 101000}), median_ms, eager_ms=0.107, compile_ms=0.041),),
            speedup_vs_eager=0.107 / median_ms,
        )
    artifact = Artifact(
        key=key,
        kernels=(
            KernelBinary(
                name="main",
                entry_point="jagged_sum_kernel",
                source=source.digest,
                abi=LaunchAbi((LaunchParam("values", "*bf16"), LaunchParam("B", "i32")), (("BLOCK", "128"),), ("B",), 4, 3, 0),
                binary=binary.digest if binary else None,
                binary_format="cubin" if binary else "",
                metadata=metadata.digest if metadata else None,
            ),
        ),
        target=Target(toolchain.backend, key.arch, 32 if key.platform == "nvidia" else 64),
        toolchain=toolchain,
        tier=tier,
        verdict=verdict,
        measurements=measurements,
    )
    return artifact, blobs
