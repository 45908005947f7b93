import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvidenceTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVIDENCE_TIER_UNSPECIFIED: _ClassVar[EvidenceTier]
    EVIDENCE_TIER_COMPILED: _ClassVar[EvidenceTier]
    EVIDENCE_TIER_INTERPRETED: _ClassVar[EvidenceTier]
    EVIDENCE_TIER_VERIFIED: _ClassVar[EvidenceTier]
    EVIDENCE_TIER_TUNED: _ClassVar[EvidenceTier]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_USE_KERNEL: _ClassVar[Verdict]
    VERDICT_PREFER_REFERENCE: _ClassVar[Verdict]

class ArtifactState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_STATE_UNSPECIFIED: _ClassVar[ArtifactState]
    ARTIFACT_STATE_ACTIVE: _ClassVar[ArtifactState]
    ARTIFACT_STATE_RETRACTED: _ClassVar[ArtifactState]

class ResolutionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_KIND_UNSPECIFIED: _ClassVar[ResolutionKind]
    RESOLUTION_KIND_BINARY: _ClassVar[ResolutionKind]
    RESOLUTION_KIND_SOURCE: _ClassVar[ResolutionKind]
    RESOLUTION_KIND_REFERENCE: _ClassVar[ResolutionKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_LEASED: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]

class CandidateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_STATUS_UNSPECIFIED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_PASSED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_COMPILE_ERROR: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_OUT_OF_RESOURCES: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_WRONG_RESULT: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_TIMEOUT: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_CRASH: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_PRUNED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_REJECTED: _ClassVar[CandidateStatus]
EVIDENCE_TIER_UNSPECIFIED: EvidenceTier
EVIDENCE_TIER_COMPILED: EvidenceTier
EVIDENCE_TIER_INTERPRETED: EvidenceTier
EVIDENCE_TIER_VERIFIED: EvidenceTier
EVIDENCE_TIER_TUNED: EvidenceTier
VERDICT_UNSPECIFIED: Verdict
VERDICT_USE_KERNEL: Verdict
VERDICT_PREFER_REFERENCE: Verdict
ARTIFACT_STATE_UNSPECIFIED: ArtifactState
ARTIFACT_STATE_ACTIVE: ArtifactState
ARTIFACT_STATE_RETRACTED: ArtifactState
RESOLUTION_KIND_UNSPECIFIED: ResolutionKind
RESOLUTION_KIND_BINARY: ResolutionKind
RESOLUTION_KIND_SOURCE: ResolutionKind
RESOLUTION_KIND_REFERENCE: ResolutionKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_LEASED: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
CANDIDATE_STATUS_UNSPECIFIED: CandidateStatus
CANDIDATE_STATUS_PASSED: CandidateStatus
CANDIDATE_STATUS_COMPILE_ERROR: CandidateStatus
CANDIDATE_STATUS_OUT_OF_RESOURCES: CandidateStatus
CANDIDATE_STATUS_WRONG_RESULT: CandidateStatus
CANDIDATE_STATUS_TIMEOUT: CandidateStatus
CANDIDATE_STATUS_CRASH: CandidateStatus
CANDIDATE_STATUS_PRUNED: CandidateStatus
CANDIDATE_STATUS_REJECTED: CandidateStatus

class OperatorSpec(_message.Message):
    __slots__ = ("name", "version", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    params: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class KernelKey(_message.Message):
    __slots__ = ("platform", "arch", "model", "operator")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    platform: str
    arch: str
    model: str
    operator: OperatorSpec
    def __init__(self, platform: _Optional[str] = ..., arch: _Optional[str] = ..., model: _Optional[str] = ..., operator: _Optional[_Union[OperatorSpec, _Mapping]] = ...) -> None: ...

class Digest(_message.Message):
    __slots__ = ("sha256", "size_bytes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class Toolchain(_message.Message):
    __slots__ = ("triton_version", "backend")
    TRITON_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    triton_version: str
    backend: str
    def __init__(self, triton_version: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("backend", "arch", "warp_size")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    WARP_SIZE_FIELD_NUMBER: _ClassVar[int]
    backend: str
    arch: str
    warp_size: int
    def __init__(self, backend: _Optional[str] = ..., arch: _Optional[str] = ..., warp_size: _Optional[int] = ...) -> None: ...

class Runtime(_message.Message):
    __slots__ = ("toolchain", "host")
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    toolchain: Toolchain
    host: str
    def __init__(self, toolchain: _Optional[_Union[Toolchain, _Mapping]] = ..., host: _Optional[str] = ...) -> None: ...

class LaunchParam(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Constexpr(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class LaunchAbi(_message.Message):
    __slots__ = ("params", "constexprs", "grid", "num_warps", "num_stages", "shared_memory_bytes")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CONSTEXPRS_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    NUM_WARPS_FIELD_NUMBER: _ClassVar[int]
    NUM_STAGES_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    params: _containers.RepeatedCompositeFieldContainer[LaunchParam]
    constexprs: _containers.RepeatedCompositeFieldContainer[Constexpr]
    grid: _containers.RepeatedScalarFieldContainer[str]
    num_warps: int
    num_stages: int
    shared_memory_bytes: int
    def __init__(self, params: _Optional[_Iterable[_Union[LaunchParam, _Mapping]]] = ..., constexprs: _Optional[_Iterable[_Union[Constexpr, _Mapping]]] = ..., grid: _Optional[_Iterable[str]] = ..., num_warps: _Optional[int] = ..., num_stages: _Optional[int] = ..., shared_memory_bytes: _Optional[int] = ...) -> None: ...

class KernelBinary(_message.Message):
    __slots__ = ("name", "binary", "binary_format", "metadata", "source", "entry_point", "abi")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    BINARY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    ABI_FIELD_NUMBER: _ClassVar[int]
    name: str
    binary: Digest
    binary_format: str
    metadata: Digest
    source: Digest
    entry_point: str
    abi: LaunchAbi
    def __init__(self, name: _Optional[str] = ..., binary: _Optional[_Union[Digest, _Mapping]] = ..., binary_format: _Optional[str] = ..., metadata: _Optional[_Union[Digest, _Mapping]] = ..., source: _Optional[_Union[Digest, _Mapping]] = ..., entry_point: _Optional[str] = ..., abi: _Optional[_Union[LaunchAbi, _Mapping]] = ...) -> None: ...

class TuningShape(_message.Message):
    __slots__ = ("dims", "weight")
    class DimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DIMS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    dims: _containers.ScalarMap[str, int]
    weight: float
    def __init__(self, dims: _Optional[_Mapping[str, int]] = ..., weight: _Optional[float] = ...) -> None: ...

class ShapeMeasurement(_message.Message):
    __slots__ = ("shape", "median_ms", "p20_ms", "p80_ms", "eager_ms", "compile_ms", "bandwidth_fraction", "flops_fraction")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    P20_MS_FIELD_NUMBER: _ClassVar[int]
    P80_MS_FIELD_NUMBER: _ClassVar[int]
    EAGER_MS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_MS_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FRACTION_FIELD_NUMBER: _ClassVar[int]
    shape: TuningShape
    median_ms: float
    p20_ms: float
    p80_ms: float
    eager_ms: float
    compile_ms: float
    bandwidth_fraction: float
    flops_fraction: float
    def __init__(self, shape: _Optional[_Union[TuningShape, _Mapping]] = ..., median_ms: _Optional[float] = ..., p20_ms: _Optional[float] = ..., p80_ms: _Optional[float] = ..., eager_ms: _Optional[float] = ..., compile_ms: _Optional[float] = ..., bandwidth_fraction: _Optional[float] = ..., flops_fraction: _Optional[float] = ...) -> None: ...

class Measurements(_message.Message):
    __slots__ = ("shapes", "max_relative_error", "speedup_vs_eager", "speedup_vs_compile")
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    MAX_RELATIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_VS_EAGER_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_VS_COMPILE_FIELD_NUMBER: _ClassVar[int]
    shapes: _containers.RepeatedCompositeFieldContainer[ShapeMeasurement]
    max_relative_error: float
    speedup_vs_eager: float
    speedup_vs_compile: float
    def __init__(self, shapes: _Optional[_Iterable[_Union[ShapeMeasurement, _Mapping]]] = ..., max_relative_error: _Optional[float] = ..., speedup_vs_eager: _Optional[float] = ..., speedup_vs_compile: _Optional[float] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("generator_version", "search_strategy", "candidates_tried", "worker_id", "device", "job_id", "started_at", "finished_at")
    GENERATOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEARCH_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_TRIED_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    generator_version: str
    search_strategy: str
    candidates_tried: int
    worker_id: str
    device: str
    job_id: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, generator_version: _Optional[str] = ..., search_strategy: _Optional[str] = ..., candidates_tried: _Optional[int] = ..., worker_id: _Optional[str] = ..., device: _Optional[str] = ..., job_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("algorithm", "key_id", "signature")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    key_id: str
    signature: bytes
    def __init__(self, algorithm: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("artifact_id", "key", "kernels", "target", "toolchain", "tier", "verdict", "measurements", "provenance", "signature", "state", "retract_reason", "published_at", "retracted_at")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RETRACT_REASON_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    RETRACTED_AT_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    key: KernelKey
    kernels: _containers.RepeatedCompositeFieldContainer[KernelBinary]
    target: Target
    toolchain: Toolchain
    tier: EvidenceTier
    verdict: Verdict
    measurements: Measurements
    provenance: Provenance
    signature: Signature
    state: ArtifactState
    retract_reason: str
    published_at: _timestamp_pb2.Timestamp
    retracted_at: _timestamp_pb2.Timestamp
    def __init__(self, artifact_id: _Optional[str] = ..., key: _Optional[_Union[KernelKey, _Mapping]] = ..., kernels: _Optional[_Iterable[_Union[KernelBinary, _Mapping]]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., toolchain: _Optional[_Union[Toolchain, _Mapping]] = ..., tier: _Optional[_Union[EvidenceTier, str]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., measurements: _Optional[_Union[Measurements, _Mapping]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ..., state: _Optional[_Union[ArtifactState, str]] = ..., retract_reason: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retracted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VariantDecision(_message.Message):
    __slots__ = ("artifact_id", "accepted", "reason")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    accepted: bool
    reason: str
    def __init__(self, artifact_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("key", "kind", "artifact", "reason", "decisions", "job_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    key: KernelKey
    kind: ResolutionKind
    artifact: Artifact
    reason: str
    decisions: _containers.RepeatedCompositeFieldContainer[VariantDecision]
    job_id: str
    def __init__(self, key: _Optional[_Union[KernelKey, _Mapping]] = ..., kind: _Optional[_Union[ResolutionKind, str]] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ..., reason: _Optional[str] = ..., decisions: _Optional[_Iterable[_Union[VariantDecision, _Mapping]]] = ..., job_id: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "key", "state", "priority", "tuning_shapes", "attempts", "max_attempts", "worker_id", "lease_id", "lease_expires_at", "created_at", "updated_at", "last_error", "artifact_id", "progress", "toolchain", "waiting_for")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TUNING_SHAPES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    key: KernelKey
    state: JobState
    priority: int
    tuning_shapes: _containers.RepeatedCompositeFieldContainer[TuningShape]
    attempts: int
    max_attempts: int
    worker_id: str
    lease_id: str
    lease_expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_error: str
    artifact_id: str
    progress: str
    toolchain: Toolchain
    waiting_for: str
    def __init__(self, job_id: _Optional[str] = ..., key: _Optional[_Union[KernelKey, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., priority: _Optional[int] = ..., tuning_shapes: _Optional[_Iterable[_Union[TuningShape, _Mapping]]] = ..., attempts: _Optional[int] = ..., max_attempts: _Optional[int] = ..., worker_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., artifact_id: _Optional[str] = ..., progress: _Optional[str] = ..., toolchain: _Optional[_Union[Toolchain, _Mapping]] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class CandidateRecord(_message.Message):
    __slots__ = ("config", "status", "reason", "median_ms", "max_relative_error")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RELATIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    config: str
    status: CandidateStatus
    reason: str
    median_ms: float
    max_relative_error: float
    def __init__(self, config: _Optional[str] = ..., status: _Optional[_Union[CandidateStatus, str]] = ..., reason: _Optional[str] = ..., median_ms: _Optional[float] = ..., max_relative_error: _Optional[float] = ...) -> None: ...

class Capability(_message.Message):
    __slots__ = ("platform", "arch")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    platform: str
    arch: str
    def __init__(self, platform: _Optional[str] = ..., arch: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "capabilities", "toolchain")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    toolchain: Toolchain
    def __init__(self, worker_id: _Optional[str] = ..., capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., toolchain: _Optional[_Union[Toolchain, _Mapping]] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("info", "last_seen", "live_until", "job_id")
    INFO_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LIVE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    info: WorkerInfo
    last_seen: _timestamp_pb2.Timestamp
    live_until: _timestamp_pb2.Timestamp
    job_id: str
    def __init__(self, info: _Optional[_Union[WorkerInfo, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., live_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class Blob(_message.Message):
    __slots__ = ("digest", "data")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    data: bytes
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetKernelRequest(_message.Message):
    __slots__ = ("key", "runtime", "no_queue")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    NO_QUEUE_FIELD_NUMBER: _ClassVar[int]
    key: KernelKey
    runtime: Runtime
    no_queue: bool
    def __init__(self, key: _Optional[_Union[KernelKey, _Mapping]] = ..., runtime: _Optional[_Union[Runtime, _Mapping]] = ..., no_queue: _Optional[bool] = ...) -> None: ...

class GetKernelResponse(_message.Message):
    __slots__ = ("resolution",)
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    resolution: Resolution
    def __init__(self, resolution: _Optional[_Union[Resolution, _Mapping]] = ...) -> None: ...

class GetManifestRequest(_message.Message):
    __slots__ = ("platform", "arch", "model", "runtime", "operators", "no_queue")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    NO_QUEUE_FIELD_NUMBER: _ClassVar[int]
    platform: str
    arch: str
    model: str
    runtime: Runtime
    operators: _containers.RepeatedCompositeFieldContainer[OperatorSpec]
    no_queue: bool
    def __init__(self, platform: _Optional[str] = ..., arch: _Optional[str] = ..., model: _Optional[str] = ..., runtime: _Optional[_Union[Runtime, _Mapping]] = ..., operators: _Optional[_Iterable[_Union[OperatorSpec, _Mapping]]] = ..., no_queue: _Optional[bool] = ...) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("resolutions", "generated_at")
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    resolutions: _containers.RepeatedCompositeFieldContainer[Resolution]
    generated_at: _timestamp_pb2.Timestamp
    def __init__(self, resolutions: _Optional[_Iterable[_Union[Resolution, _Mapping]]] = ..., generated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FetchBlobRequest(_message.Message):
    __slots__ = ("sha256", "offset")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    offset: int
    def __init__(self, sha256: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class FetchBlobResponse(_message.Message):
    __slots__ = ("offset", "data", "digest")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    digest: Digest
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., digest: _Optional[_Union[Digest, _Mapping]] = ...) -> None: ...

class WatchKernelRequest(_message.Message):
    __slots__ = ("key", "runtime")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    key: KernelKey
    runtime: Runtime
    def __init__(self, key: _Optional[_Union[KernelKey, _Mapping]] = ..., runtime: _Optional[_Union[Runtime, _Mapping]] = ...) -> None: ...

class WatchKernelResponse(_message.Message):
    __slots__ = ("resolution", "job")
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    resolution: Resolution
    job: Job
    def __init__(self, resolution: _Optional[_Union[Resolution, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListKernelsRequest(_message.Message):
    __slots__ = ("platform", "arch", "model", "operator_name", "page_size", "page_token")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    platform: str
    arch: str
    model: str
    operator_name: str
    page_size: int
    page_token: str
    def __init__(self, platform: _Optional[str] = ..., arch: _Optional[str] = ..., model: _Optional[str] = ..., operator_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListKernelsResponse(_message.Message):
    __slots__ = ("artifacts", "next_page_token")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    next_page_token: str
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DescribeKernelRequest(_message.Message):
    __slots__ = ("key", "artifact_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    key: KernelKey
    artifact_id: str
    def __init__(self, key: _Optional[_Union[KernelKey, _Mapping]] = ..., artifact_id: _Optional[str] = ...) -> None: ...

class DescribeKernelResponse(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job", "candidates")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    job: Job
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateRecord]
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateRecord, _Mapping]]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("include_gone",)
    INCLUDE_GONE_FIELD_NUMBER: _ClassVar[int]
    include_gone: bool
    def __init__(self, include_gone: _Optional[bool] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...

class LeaseJobRequest(_message.Message):
    __slots__ = ("worker", "wait", "lease_duration")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    worker: WorkerInfo
    wait: _duration_pb2.Duration
    lease_duration: _duration_pb2.Duration
    def __init__(self, worker: _Optional[_Union[WorkerInfo, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class LeaseJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("job_id", "lease_id", "lease_duration", "progress")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_id: str
    lease_duration: _duration_pb2.Duration
    progress: str
    def __init__(self, job_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., progress: _Optional[str] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("lease_expires_at",)
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteJobRequest(_message.Message):
    __slots__ = ("job_id", "lease_id", "artifact", "blobs", "candidates")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_id: str
    artifact: Artifact
    blobs: _containers.RepeatedCompositeFieldContainer[Blob]
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateRecord]
    def __init__(self, job_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ..., blobs: _Optional[_Iterable[_Union[Blob, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[CandidateRecord, _Mapping]]] = ...) -> None: ...

class CompleteJobResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class FailJobRequest(_message.Message):
    __slots__ = ("job_id", "lease_id", "reason", "retryable", "candidates")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_id: str
    reason: str
    retryable: bool
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateRecord]
    def __init__(self, job_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., reason: _Optional[str] = ..., retryable: _Optional[bool] = ..., candidates: _Optional[_Iterable[_Union[CandidateRecord, _Mapping]]] = ...) -> None: ...

class FailJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class PublishKernelRequest(_message.Message):
    __slots__ = ("artifact", "blobs")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    blobs: _containers.RepeatedCompositeFieldContainer[Blob]
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., blobs: _Optional[_Iterable[_Union[Blob, _Mapping]]] = ...) -> None: ...

class PublishKernelResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class RequestGenerationRequest(_message.Message):
    __slots__ = ("keys", "priority", "force", "tuning_shapes", "toolchain")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    TUNING_SHAPES_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KernelKey]
    priority: int
    force: bool
    tuning_shapes: _containers.RepeatedCompositeFieldContainer[TuningShape]
    toolchain: Toolchain
    def __init__(self, keys: _Optional[_Iterable[_Union[KernelKey, _Mapping]]] = ..., priority: _Optional[int] = ..., force: _Optional[bool] = ..., tuning_shapes: _Optional[_Iterable[_Union[TuningShape, _Mapping]]] = ..., toolchain: _Optional[_Union[Toolchain, _Mapping]] = ...) -> None: ...

class RequestGenerationResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class RetractKernelRequest(_message.Message):
    __slots__ = ("artifact_id", "reason")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    reason: str
    def __init__(self, artifact_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetractKernelResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...
