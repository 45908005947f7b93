"""The domain model: small frozen dataclasses that the inside of client and server work on.

Protobuf messages exist only at the edges (registry/service.py, kreg/client.py, via
kreg/convert.py). Times are unix seconds (float), durations seconds (float).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from kreg.keys import KernelKey


class EvidenceTier(enum.IntEnum):
    """How much is known about a kernel, worst to best: the registry serves the best tier first."""

    COMPILED = 1
    INTERPRETED = 2
    VERIFIED = 3
    TUNED = 4


class Verdict(enum.Enum):
    USE_KERNEL = 1
    # KernelEvolve's rule: a tuned kernel slower than the reference is never shipped.
    PREFER_REFERENCE = 2


class ArtifactState(enum.Enum):
    ACTIVE = 1
    RETRACTED = 2


class ResolutionKind(enum.Enum):
    BINARY = 1
    SOURCE = 2
    REFERENCE = 3


class JobState(enum.Enum):
    QUEUED = 1
    LEASED = 2
    SUCCEEDED = 3
    FAILED = 4

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class CandidateStatus(enum.Enum):
    PASSED = 1
    COMPILE_ERROR = 2
    OUT_OF_RESOURCES = 3
    WRONG_RESULT = 4
    TIMEOUT = 5
    CRASH = 6
    PRUNED = 7
    REJECTED = 8  # model-written source the sandbox's static checks refused (generator.sandbox)


@dataclass(frozen=True)
class Digest:
    sha256: str
    size_bytes: int

    def __str__(self) -> str:
        return f"sha256:{self.sha256}/{self.size_bytes}"


@dataclass(frozen=True)
class Toolchain:
    triton_version: str
    backend: str  # cuda | hip | cpu

    def __str__(self) -> str:
        return f"triton {self.triton_version}/{self.backend}"


@dataclass(frozen=True)
class Target:
    backend: str
    arch: str
    warp_size: int


@dataclass(frozen=True)
class Runtime:
    """The caller: what it can load without compiling. toolchain None = cannot load binaries."""

    toolchain: Toolchain | None = None
    host: str = ""


# An argument a binary was compiled assuming is a multiple of this (a pointer's address, an
# int's value): what Triton's JIT specializes on, so that loads and stores vectorize.
DIVISIBILITY = 16


@dataclass(frozen=True)
class LaunchParam:
    """A binary's runtime parameter: its name and Triton type ("*bf16", "i32", ...), the type
    suffixed ":16" when the binary assumes the argument is a multiple of DIVISIBILITY (the
    notation of Triton's AOT compiler, triton/tools/compile.py). A launch whose argument is
    not must not use the binary (kreg.ops.loaded.binary_mismatch)."""

    name: str
    type: str

    @property
    def triton_type(self) -> str:
        return self.type.partition(":")[0]

    @property
    def divisible(self) -> bool:
        return self.type.partition(":")[2] == str(DIVISIBILITY)


@dataclass(frozen=True)
class LaunchAbi:
    params: tuple[LaunchParam, ...] = ()
    constexprs: tuple[tuple[str, str], ...] = ()
    grid: tuple[str, ...] = ()
    num_warps: int = 4
    num_stages: int = 3
    shared_memory_bytes: int = 0


@dataclass(frozen=True)
class KernelBinary:
    """One launch of an operator; binary/metadata are absent for source-only variants."""

    name: str
    entry_point: str
    source: Digest
    abi: LaunchAbi = field(default_factory=LaunchAbi)
    binary: Digest | None = None
    binary_format: str = ""
    metadata: Digest | None = None

    def digests(self) -> tuple[Digest, ...]:
        return tuple(d for d in (self.binary, self.metadata, self.source) if d is not None)


@dataclass(frozen=True)
class TuningShape:
    dims: Mapping[str, int]
    weight: float = 1.0


@dataclass(frozen=True)
class ShapeMeasurement:
    shape: TuningShape
    median_ms: float
    p20_ms: float = 0.0
    p80_ms: float = 0.0
    eager_ms: float = 0.0
    compile_ms: float = 0.0
    bandwidth_fraction: float = 0.0
    flops_fraction: float = 0.0


@dataclass(frozen=True)
class Measurements:
    shapes: tuple[ShapeMeasurement, ...] = ()
    max_relative_error: float = 0.0
    speedup_vs_eager: float = 0.0
    speedup_vs_compile: float = 0.0

    @property
    def median_ms(self) -> float | None:
        """Weighted mean of the per-shape medians; None when never timed."""
        if not self.shapes:
            return None
        total = sum(s.shape.weight for s in self.shapes) or float(len(self.shapes))
        return sum(s.median_ms * (s.shape.weight or 1.0) for s in self.shapes) / total


@dataclass(frozen=True)
class Provenance:
    generator_version: str = ""
    search_strategy: str = ""
    candidates_tried: int = 0
    worker_id: str = ""
    device: str = ""
    job_id: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class Signature:
    algorithm: str
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class Artifact:
    """One variant of a key: its kernels plus the evidence behind them.

    artifact_id, state, retract_reason, published_at and retracted_at are assigned by the registry.
    """

    key: KernelKey
    kernels: tuple[KernelBinary, ...]
    target: Target
    toolchain: Toolchain
    tier: EvidenceTier
    verdict: Verdict = Verdict.USE_KERNEL
    measurements: Measurements = field(default_factory=Measurements)
    provenance: Provenance = field(default_factory=Provenance)
    signature: Signature | None = None
    artifact_id: str = ""
    state: ArtifactState = ArtifactState.ACTIVE
    retract_reason: str = ""
    published_at: float = 0.0
    retracted_at: float = 0.0

    @property
    def has_binaries(self) -> bool:
        return bool(self.kernels) and all(k.binary is not None for k in self.kernels)

    def digests(self) -> tuple[Digest, ...]:
        return tuple(d for k in self.kernels for d in k.digests())


@dataclass(frozen=True)
class VariantDecision:
    artifact_id: str
    accepted: bool
    reason: str


@dataclass(frozen=True)
class Resolution:
    key: KernelKey
    kind: ResolutionKind
    reason: str
    artifact: Artifact | None = None
    decisions: tuple[VariantDecision, ...] = ()
    job_id: str = ""


@dataclass(frozen=True)
class Capability:
    """A (platform, arch) a worker serves; '*' matches any."""

    platform: str
    arch: str

    def matches(self, key: KernelKey) -> bool:
        return self.platform in ("*", key.platform) and self.arch in ("*", key.arch)


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    capabilities: tuple[Capability, ...]
    toolchain: Toolchain | None = None

    def can_serve(self, key: KernelKey) -> bool:
        return any(c.matches(key) for c in self.capabilities)

    def can_run(self, job: Job) -> bool:
        """Whether this worker may lease `job`: it serves the key's (platform, arch) and, when
        the job requires a toolchain, has exactly that one (a binary only loads under its own)."""
        return self.can_serve(job.key) and (job.toolchain is None or job.toolchain == self.toolchain)


@dataclass(frozen=True)
class WorkerStatus:
    """A worker as the registry last heard from it."""

    info: WorkerInfo
    last_seen: float
    live_until: float  # the end of its poll or of its lease: live until then without a word
    job_id: str = ""  # the job it holds, if any

    def live(self, now: float) -> bool:
        return now < self.live_until


@dataclass(frozen=True)
class Job:
    job_id: str
    key: KernelKey
    state: JobState
    priority: int = 0
    tuning_shapes: tuple[TuningShape, ...] = ()
    attempts: int = 0
    max_attempts: int = 3
    worker_id: str = ""
    lease_id: str = ""
    lease_expires_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    last_error: str = ""
    artifact_id: str = ""
    progress: str = ""
    # The toolchain the binary must be built with; None = any worker's toolchain will do.
    toolchain: Toolchain | None = None
    # Why a queued job is not being taken, when the registry can tell (no live worker serves
    # its target or has its toolchain); "" otherwise. Computed when read, never stored.
    waiting_for: str = ""


@dataclass(frozen=True)
class CandidateRecord:
    config: str
    status: CandidateStatus
    reason: str = ""
    median_ms: float = 0.0
    max_relative_error: float = 0.0


@dataclass(frozen=True)
class BlobData:
    """Bytes being published, with the digest the publisher claims for them."""

    digest: Digest
    data: bytes
