"""Protobuf <-> domain conversion: used only at the two edges (registry/service.py and
kreg/client.py). Enum values share names between proto and domain (EVIDENCE_TIER_TUNED <->
EvidenceTier.TUNED), so the mapping is by name and a new value cannot be forgotten silently.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import TypeVar

from google.protobuf import duration_pb2, timestamp_pb2

from kreg.errors import InvalidArgument
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import (
    Artifact,
    ArtifactState,
    BlobData,
    CandidateRecord,
    CandidateStatus,
    Capability,
    Digest,
    EvidenceTier,
    Job,
    JobState,
    KernelBinary,
    LaunchAbi,
    LaunchParam,
    Measurements,
    Provenance,
    Resolution,
    ResolutionKind,
    Runtime,
    ShapeMeasurement,
    Signature,
    Target,
    Toolchain,
    TuningShape,
    VariantDecision,
    Verdict,
    WorkerInfo,
    WorkerStatus,
)
from kreg.v1 import registry_pb2 as pb

E = TypeVar("E", bound=enum.Enum)

# --------------------------------------------------------------- enums and scalars


def _enum_prefix(domain: type[enum.Enum]) -> str:
    # EvidenceTier -> EVIDENCE_TIER_
    name = domain.__name__
    return "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper() + "_"


def enum_to_proto(value: E) -> int:
    return int(pb.DESCRIPTOR.enum_types_by_name[type(value).__name__].values_by_name[_enum_prefix(type(value)) + value.name].number)


def enum_from_proto(domain: type[E], number: int, field: str) -> E:
    descriptor = pb.DESCRIPTOR.enum_types_by_name[domain.__name__].values_by_number.get(number)
    if descriptor is None or number == 0:
        raise InvalidArgument(f"{field}: missing or unknown {domain.__name__} value {number}")
    return domain[descriptor.name.removeprefix(_enum_prefix(domain))]


def enum_from_proto_optional(domain: type[E], number: int, field: str) -> E | None:
    """For filters, where the zero value means 'any'."""
    return None if number == 0 else enum_from_proto(domain, number, field)


def timestamp_to_proto(seconds: float) -> timestamp_pb2.Timestamp | None:
    if not seconds:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def timestamp_from_proto(msg: timestamp_pb2.Timestamp) -> float:
    return msg.ToNanoseconds() / 1e9


def duration_to_proto(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def duration_from_proto(msg: duration_pb2.Duration) -> float:
    return msg.ToNanoseconds() / 1e9


# --------------------------------------------------------------- identity


def operator_to_proto(op: OperatorSpec) -> pb.OperatorSpec:
    return pb.OperatorSpec(name=op.name, version=op.version, params=dict(op.params))


def operator_from_proto(msg: pb.OperatorSpec, field: str = "operator") -> OperatorSpec:
    try:
        return _operator(msg.name, msg.version, tuple(sorted(msg.params.items())))
    except ValueError as e:
        raise InvalidArgument(f"{field}: {e}") from None


@functools.lru_cache(maxsize=4096)
def _operator(name: str, version: int, params: tuple[tuple[str, str], ...]) -> OperatorSpec:
    """Validated once per distinct spec: a manifest names the same few specs all day, and
    validating each was a twentieth of a manifest (OperatorSpec is immutable, so sharing is safe)."""
    return OperatorSpec(name, version, dict(params))


def key_to_proto(key: KernelKey) -> pb.KernelKey:
    return pb.KernelKey(platform=key.platform, arch=key.arch, model=key.model, operator=operator_to_proto(key.operator))


def key_from_proto(msg: pb.KernelKey, field: str = "key") -> KernelKey:
    try:
        return KernelKey(msg.platform, msg.arch, msg.model, OperatorSpec(msg.operator.name, msg.operator.version, dict(msg.operator.params)))
    except ValueError as e:
        raise InvalidArgument(f"{field}: {e}") from None


def digest_to_proto(d: Digest | None) -> pb.Digest | None:
    return None if d is None else pb.Digest(sha256=d.sha256, size_bytes=d.size_bytes)


def digest_from_proto(msg: pb.Digest, field: str) -> Digest:
    sha = msg.sha256
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise InvalidArgument(f"{field}.sha256: want 64 lower-case hex characters, got {sha[:80]!r}")
    return Digest(sha, msg.size_bytes)


def toolchain_to_proto(t: Toolchain | None) -> pb.Toolchain | None:
    return None if t is None else pb.Toolchain(triton_version=t.triton_version, backend=t.backend)


def toolchain_from_proto(msg: pb.Toolchain) -> Toolchain:
    return Toolchain(msg.triton_version, msg.backend)


def runtime_to_proto(r: Runtime) -> pb.Runtime:
    return pb.Runtime(toolchain=toolchain_to_proto(r.toolchain), host=r.host)


def runtime_from_proto(msg: pb.Runtime) -> Runtime:
    return Runtime(toolchain_from_proto(msg.toolchain) if msg.HasField("toolchain") else None, msg.host)


# --------------------------------------------------------------- artifacts


def _shape_to_proto(s: TuningShape) -> pb.TuningShape:
    return pb.TuningShape(dims=dict(s.dims), weight=s.weight)


def _shape_from_proto(msg: pb.TuningShape) -> TuningShape:
    return TuningShape(dict(msg.dims), msg.weight or 1.0)


def tuning_shapes_to_proto(shapes: tuple[TuningShape, ...]) -> list[pb.TuningShape]:
    return [_shape_to_proto(s) for s in shapes]


def tuning_shapes_from_proto(msgs: object) -> tuple[TuningShape, ...]:
    return tuple(_shape_from_proto(m) for m in msgs)  # type: ignore[attr-defined]


def _kernel_to_proto(k: KernelBinary) -> pb.KernelBinary:
    abi = pb.LaunchAbi(
        params=[pb.LaunchParam(name=p.name, type=p.type) for p in k.abi.params],
        constexprs=[pb.Constexpr(name=n, value=v) for n, v in k.abi.constexprs],
        grid=list(k.abi.grid),
        num_warps=k.abi.num_warps,
        num_stages=k.abi.num_stages,
        shared_memory_bytes=k.abi.shared_memory_bytes,
    )
    return pb.KernelBinary(
        name=k.name,
        binary=digest_to_proto(k.binary),
        binary_format=k.binary_format,
        metadata=digest_to_proto(k.metadata),
        source=digest_to_proto(k.source),
        entry_point=k.entry_point,
        abi=abi,
    )


def _kernel_from_proto(msg: pb.KernelBinary, field: str) -> KernelBinary:
    if not msg.HasField("source"):
        raise InvalidArgument(f"{field}.source: every kernel needs its Triton source")
    if not msg.entry_point:
        raise InvalidArgument(f"{field}.entry_point: required")
    abi = msg.abi
    return KernelBinary(
        name=msg.name or "main",
        entry_point=msg.entry_point,
        source=digest_from_proto(msg.source, f"{field}.source"),
        abi=LaunchAbi(
            params=tuple(LaunchParam(p.name, p.type) for p in abi.params),
            constexprs=tuple((c.name, c.value) for c in abi.constexprs),
            grid=tuple(abi.grid),
            num_warps=abi.num_warps,
            num_stages=abi.num_stages,
            shared_memory_bytes=abi.shared_memory_bytes,
        ),
        binary=digest_from_proto(msg.binary, f"{field}.binary") if msg.HasField("binary") else None,
        binary_format=msg.binary_format,
        metadata=digest_from_proto(msg.metadata, f"{field}.metadata") if msg.HasField("metadata") else None,
    )


def _measurements_to_proto(m: Measurements) -> pb.Measurements:
    return pb.Measurements(
        shapes=[
            pb.ShapeMeasurement(
                shape=_shape_to_proto(s.shape),
                median_ms=s.median_ms,
                p20_ms=s.p20_ms,
                p80_ms=s.p80_ms,
                eager_ms=s.eager_ms,
                compile_ms=s.compile_ms,
                bandwidth_fraction=s.bandwidth_fraction,
                flops_fraction=s.flops_fraction,
            )
            for s in m.shapes
        ],
        max_relative_error=m.max_relative_error,
        speedup_vs_eager=m.speedup_vs_eager,
        speedup_vs_compile=m.speedup_vs_compile,
    )


def _measurements_from_proto(msg: pb.Measurements) -> Measurements:
    return Measurements(
        shapes=tuple(
            ShapeMeasurement(
                shape=_shape_from_proto(s.shape),
                median_ms=s.median_ms,
                p20_ms=s.p20_ms,
                p80_ms=s.p80_ms,
                eager_ms=s.eager_ms,
                compile_ms=s.compile_ms,
                bandwidth_fraction=s.bandwidth_fraction,
                flops_fraction=s.flops_fraction,
            )
            for s in msg.shapes
        ),
        max_relative_error=msg.max_relative_error,
        speedup_vs_eager=msg.speedup_vs_eager,
        speedup_vs_compile=msg.speedup_vs_compile,
    )


def _provenance_to_proto(p: Provenance) -> pb.Provenance:
    return pb.Provenance(
        generator_version=p.generator_version,
        search_strategy=p.search_strategy,
        candidates_tried=p.candidates_tried,
        worker_id=p.worker_id,
        device=p.device,
        job_id=p.job_id,
        started_at=timestamp_to_proto(p.started_at),
        finished_at=timestamp_to_proto(p.finished_at),
    )


def _provenance_from_proto(msg: pb.Provenance) -> Provenance:
    return Provenance(
        generator_version=msg.generator_version,
        search_strategy=msg.search_strategy,
        candidates_tried=msg.candidates_tried,
        worker_id=msg.worker_id,
        device=msg.device,
        job_id=msg.job_id,
        started_at=timestamp_from_proto(msg.started_at),
        finished_at=timestamp_from_proto(msg.finished_at),
    )


def artifact_to_proto(a: Artifact) -> pb.Artifact:
    return pb.Artifact(
        artifact_id=a.artifact_id,
        key=key_to_proto(a.key),
        kernels=[_kernel_to_proto(k) for k in a.kernels],
        target=pb.Target(backend=a.target.backend, arch=a.target.arch, warp_size=a.target.warp_size),
        toolchain=toolchain_to_proto(a.toolchain),
        tier=enum_to_proto(a.tier),
        verdict=enum_to_proto(a.verdict),
        measurements=_measurements_to_proto(a.measurements),
        provenance=_provenance_to_proto(a.provenance),
        signature=None
        if a.signature is None
        else pb.Signature(algorithm=a.signature.algorithm, key_id=a.signature.key_id, signature=a.signature.signature),
        state=enum_to_proto(a.state),
        retract_reason=a.retract_reason,
        published_at=timestamp_to_proto(a.published_at),
        retracted_at=timestamp_to_proto(a.retracted_at),
    )


def artifact_from_proto(msg: pb.Artifact, field: str = "artifact") -> Artifact:
    """Parse an artifact; registry-assigned fields (id, state, times) are read as sent."""
    if not msg.kernels:
        raise InvalidArgument(f"{field}.kernels: at least one kernel is required")
    if not msg.HasField("target") or not msg.target.backend or not msg.target.arch:
        raise InvalidArgument(f"{field}.target: backend and arch are required")
    if not msg.HasField("toolchain") or not msg.toolchain.triton_version or not msg.toolchain.backend:
        raise InvalidArgument(f"{field}.toolchain: triton_version and backend are required")
    key = key_from_proto(msg.key, f"{field}.key")
    if msg.target.arch != key.arch:
        raise InvalidArgument(f"{field}.target.arch {msg.target.arch!r} differs from the key's arch {key.arch!r}")
    return Artifact(
        key=key,
        kernels=tuple(_kernel_from_proto(k, f"{field}.kernels[{i}]") for i, k in enumerate(msg.kernels)),
        target=Target(msg.target.backend, msg.target.arch, msg.target.warp_size),
        toolchain=toolchain_from_proto(msg.toolchain),
        tier=enum_from_proto(EvidenceTier, msg.tier, f"{field}.tier"),
        verdict=enum_from_proto(Verdict, msg.verdict, f"{field}.verdict") if msg.verdict else Verdict.USE_KERNEL,
        measurements=_measurements_from_proto(msg.measurements),
        provenance=_provenance_from_proto(msg.provenance),
        signature=Signature(msg.signature.algorithm, msg.signature.key_id, msg.signature.signature)
        if msg.HasField("signature")
        else None,
        artifact_id=msg.artifact_id,
        state=enum_from_proto(ArtifactState, msg.state, f"{field}.state") if msg.state else ArtifactState.ACTIVE,
        retract_reason=msg.retract_reason,
        published_at=timestamp_from_proto(msg.published_at),
        retracted_at=timestamp_from_proto(msg.retracted_at),
    )


def blob_from_proto(msg: pb.Blob, field: str) -> BlobData:
    return BlobData(digest_from_proto(msg.digest, f"{field}.digest"), msg.data)


def blob_to_proto(b: BlobData) -> pb.Blob:
    return pb.Blob(digest=digest_to_proto(b.digest), data=b.data)


# --------------------------------------------------------------- resolution


def resolution_to_proto(r: Resolution, artifact_proto: Callable[[Artifact], pb.Artifact] = artifact_to_proto) -> pb.Resolution:
    """`artifact_proto` converts the artifact (the registry passes its cache of them)."""
    return pb.Resolution(
        key=key_to_proto(r.key),
        kind=enum_to_proto(r.kind),
        artifact=None if r.artifact is None else artifact_proto(r.artifact),
        reason=r.reason,
        decisions=[pb.VariantDecision(artifact_id=d.artifact_id, accepted=d.accepted, reason=d.reason) for d in r.decisions],
        job_id=r.job_id,
    )


def resolution_from_proto(msg: pb.Resolution) -> Resolution:
    return Resolution(
        key=key_from_proto(msg.key),
        kind=enum_from_proto(ResolutionKind, msg.kind, "resolution.kind"),
        reason=msg.reason,
        artifact=artifact_from_proto(msg.artifact) if msg.HasField("artifact") else None,
        decisions=tuple(VariantDecision(d.artifact_id, d.accepted, d.reason) for d in msg.decisions),
        job_id=msg.job_id,
    )


# --------------------------------------------------------------- jobs


def job_to_proto(j: Job) -> pb.Job:
    return pb.Job(
        job_id=j.job_id,
        key=key_to_proto(j.key),
        state=enum_to_proto(j.state),
        priority=j.priority,
        tuning_shapes=tuning_shapes_to_proto(j.tuning_shapes),
        attempts=j.attempts,
        max_attempts=j.max_attempts,
        worker_id=j.worker_id,
        lease_id=j.lease_id,
        lease_expires_at=timestamp_to_proto(j.lease_expires_at),
        created_at=timestamp_to_proto(j.created_at),
        updated_at=timestamp_to_proto(j.updated_at),
        last_error=j.last_error,
        artifact_id=j.artifact_id,
        progress=j.progress,
        toolchain=toolchain_to_proto(j.toolchain),
        waiting_for=j.waiting_for,
    )


def job_from_proto(msg: pb.Job) -> Job:
    return Job(
        job_id=msg.job_id,
        key=key_from_proto(msg.key),
        state=enum_from_proto(JobState, msg.state, "job.state"),
        priority=msg.priority,
        tuning_shapes=tuning_shapes_from_proto(msg.tuning_shapes),
        attempts=msg.attempts,
        max_attempts=msg.max_attempts,
        worker_id=msg.worker_id,
        lease_id=msg.lease_id,
        lease_expires_at=timestamp_from_proto(msg.lease_expires_at),
        created_at=timestamp_from_proto(msg.created_at),
        updated_at=timestamp_from_proto(msg.updated_at),
        last_error=msg.last_error,
        artifact_id=msg.artifact_id,
        progress=msg.progress,
        toolchain=toolchain_from_proto(msg.toolchain) if msg.HasField("toolchain") else None,
        waiting_for=msg.waiting_for,
    )


def candidate_to_proto(c: CandidateRecord) -> pb.CandidateRecord:
    return pb.CandidateRecord(
        config=c.config,
        status=enum_to_proto(c.status),
        reason=c.reason,
        median_ms=c.median_ms,
        max_relative_error=c.max_relative_error,
    )


def candidate_from_proto(msg: pb.CandidateRecord, field: str = "candidate") -> CandidateRecord:
    return CandidateRecord(
        config=msg.config,
        status=enum_from_proto(CandidateStatus, msg.status, f"{field}.status"),
        reason=msg.reason,
        median_ms=msg.median_ms,
        max_relative_error=msg.max_relative_error,
    )


def worker_to_proto(w: WorkerInfo) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        worker_id=w.worker_id,
        capabilities=[pb.Capability(platform=c.platform, arch=c.arch) for c in w.capabilities],
        toolchain=toolchain_to_proto(w.toolchain),
    )


def worker_from_proto(msg: pb.WorkerInfo) -> WorkerInfo:
    if not msg.worker_id:
        raise InvalidArgument("worker.worker_id: required")
    if not msg.capabilities:
        raise InvalidArgument("worker.capabilities: a worker must serve at least one (platform, arch)")
    return WorkerInfo(
        worker_id=msg.worker_id,
        capabilities=tuple(Capability(c.platform or "*", c.arch or "*") for c in msg.capabilities),
        toolchain=toolchain_from_proto(msg.toolchain) if msg.HasField("toolchain") else None,
    )


def worker_status_to_proto(w: WorkerStatus) -> pb.Worker:
    return pb.Worker(
        info=worker_to_proto(w.info),
        last_seen=timestamp_to_proto(w.last_seen),
        live_until=timestamp_to_proto(w.live_until),
        job_id=w.job_id,
    )


def worker_status_from_proto(msg: pb.Worker) -> WorkerStatus:
    return WorkerStatus(
        worker_from_proto(msg.info), timestamp_from_proto(msg.last_seen), timestamp_from_proto(msg.live_until), msg.job_id
    )
