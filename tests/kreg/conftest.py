"""Builders for fully populated domain objects: every field set to a non-default value, so
a codec that drops or mangles any field fails a round-trip test."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    ArtifactState,
    Digest,
    EvidenceTier,
    KernelBinary,
    LaunchAbi,
    LaunchParam,
    Measurements,
    Provenance,
    Resolution,
    ResolutionKind,
    ShapeMeasurement,
    Signature,
    Target,
    Toolchain,
    TuningShape,
    VariantDecision,
    Verdict,
)


def digest_of(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def make_artifact(key: KernelKey, seed: str = "a") -> Artifact:
    shape = TuningShape({"B": 1024, "L": 512}, weight=0.75)
    kernels = (
        KernelBinary(
            name="count",
            entry_point="count_kernel",
            source=digest_of(f"{seed}-count.py".encode()),
            abi=LaunchAbi(
                params=(LaunchParam("x_ptr", "*bf16"), LaunchParam("n", "i32")),
                constexprs=(("BLOCK", "128"), ("D", "128")),
                grid=("cdiv(n, BLOCK)", "1"),
                num_warps=8,
                num_stages=2,
                shared_memory_bytes=4096,
            ),
            binary=digest_of(f"{seed}-count.cubin".encode()),
            binary_format="cubin",
            metadata=digest_of(f"{seed}-count.json".encode()),
        ),
        KernelBinary(
            name="scatter",
            entry_point="scatter_kernel",
            source=digest_of(f"{seed}-scatter.py".encode()),
            binary=digest_of(f"{seed}-scatter.cubin".encode()),
            binary_format="cubin",
        ),
    )
    return Artifact(
        key=key,
        kernels=kernels,
        target=Target(backend="cuda", arch=key.arch, warp_size=32),
        toolchain=Toolchain("3.6.0", "cuda"),
        tier=EvidenceTier.TUNED,
        verdict=Verdict.USE_KERNEL,
        measurements=Measurements(
            shapes=(ShapeMeasurement(shape, 0.125, 0.12, 0.13, 0.5, 0.25, 0.8, 0.1),),
            max_relative_error=1e-3,
            speedup_vs_eager=4.0,
            speedup_vs_compile=2.0,
        ),
        provenance=Provenance("gen-1.2", "grid", 48, "worker-7", "H100", "job-1", 100.5, 200.25),
        signature=Signature("ed25519", "key-1", b"\x00\x01sig"),
        artifact_id=f"art-{seed}",
        state=ArtifactState.RETRACTED,
        retract_reason="bad numerics",
        published_at=300.5,
    )


def make_resolution(key: KernelKey, seed: str = "a") -> Resolution:
    return Resolution(
        key=key,
        kind=ResolutionKind.BINARY,
        reason="exact binary for sm_90 + triton 3.6.0",
        artifact=make_artifact(key, seed),
        decisions=(
            VariantDecision(f"art-{seed}", True, "best tier"),
            VariantDecision("art-other", False, "toolchain triton 3.5.0 != runtime triton 3.6.0"),
        ),
        job_id="job-9",
    )


@pytest.fixture
def key() -> KernelKey:
    return KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}")


@pytest.fixture
def artifact_factory() -> Callable[..., Artifact]:
    return make_artifact


@pytest.fixture
def resolution_factory() -> Callable[..., Resolution]:
    return make_resolution
