"""serde: every field survives JSON, and the content id covers content only."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from collections.abc import Callable

import pytest

from kreg import serde
from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    ArtifactState,
    Digest,
    EvidenceTier,
    Job,
    JobState,
    Measurements,
    Resolution,
    ResolutionKind,
    Signature,
    Toolchain,
    TuningShape,
)


def test_a_fully_populated_artifact_round_trips(
    key: KernelKey, artifact_factory: Callable[..., Artifact]
) -> None:
    artifact = artifact_factory(key)
    back = serde.loads(Artifact, serde.dumps(artifact))
    assert back == artifact
    assert isinstance(back.kernels, tuple) and isinstance(back.kernels[0].abi.constexprs[0], tuple)
    assert back.signature is not None and back.signature.signature == b"\x00\x01sig"
    assert back.measurements.shapes[0].shape.dims == {"B": 1024, "L": 512}


def test_a_fully_populated_job_round_trips(key: KernelKey) -> None:
    job = Job(
        job_id="job-1",
        key=key,
        state=JobState.LEASED,
        priority=5,
        tuning_shapes=(TuningShape({"B": 64, "L": 128}, 0.25), TuningShape({"B": 1024}, 0.75)),
        attempts=2,
        max_attempts=4,
        worker_id="worker-3",
        lease_id="lease-9",
        lease_expires_at=1700000000.5,
        created_at=1699999000.25,
        updated_at=1699999500.0,
        last_error="compile error: out of registers",
        artifact_id="art-1",
        progress="12/48 candidates",
    )
    assert serde.loads(Job, serde.dumps(job)) == job


def test_a_fully_populated_resolution_round_trips(
    key: KernelKey, resolution_factory: Callable[..., Resolution]
) -> None:
    resolution = resolution_factory(key)
    assert serde.loads(Resolution, serde.dumps(resolution)) == resolution


def test_a_reference_resolution_without_artifact_round_trips(key: KernelKey) -> None:
    resolution = Resolution(key, ResolutionKind.REFERENCE, "no variant for sm_90", job_id="job-2")
    assert serde.loads(Resolution, serde.dumps(resolution)) == resolution


def test_json_form_uses_canonical_key_text_enum_names_and_hex_bytes(
    key: KernelKey, artifact_factory: Callable[..., Artifact]
) -> None:
    doc = json.loads(serde.dumps(artifact_factory(key)))
    assert doc["key"] == str(key)
    assert doc["tier"] == "TUNED" and doc["state"] == "RETRACTED"
    assert doc["signature"]["signature"] == "0001" + b"sig".hex()


def test_dumps_is_deterministic(key: KernelKey, artifact_factory: Callable[..., Artifact]) -> None:
    assert serde.dumps(artifact_factory(key)) == serde.dumps(artifact_factory(key))


def test_unknown_fields_from_a_newer_writer_are_ignored(key: KernelKey) -> None:
    doc = json.loads(serde.dumps(Job("job-1", key, JobState.QUEUED)))
    doc["field_from_the_future"] = {"x": 1}
    assert serde.loads(Job, json.dumps(doc).encode()) == Job("job-1", key, JobState.QUEUED)


# ------------------------------------------------------------------ artifact_content_id


@pytest.mark.parametrize(
    "changes",
    [
        {"artifact_id": "art-other"},
        {"state": ArtifactState.ACTIVE},
        {"retract_reason": ""},
        {"published_at": 0.0},
        {"retracted_at": 301.5},
        {"signature": None},
        {"signature": Signature("ed25519", "key-2", b"other")},
    ],
    ids=lambda c: next(iter(c)),
)
def test_content_id_ignores_registry_assigned_fields_and_signature(
    key: KernelKey, artifact_factory: Callable[..., Artifact], changes: dict[str, Any]
) -> None:
    artifact = artifact_factory(key)
    assert serde.artifact_content_id(dataclasses.replace(artifact, **changes)) == serde.artifact_content_id(
        artifact
    )


def _with_kernel_digest(artifact: Artifact, field: str, digest: Digest) -> Artifact:
    changes: dict[str, Any] = {field: digest}
    first = dataclasses.replace(artifact.kernels[0], **changes)
    return dataclasses.replace(artifact, kernels=(first, *artifact.kernels[1:]))


@pytest.mark.parametrize("field", ["binary", "source", "metadata"])
def test_content_id_changes_when_a_kernel_digest_changes(
    key: KernelKey, artifact_factory: Callable[..., Artifact], field: str
) -> None:
    artifact = artifact_factory(key)
    original: Digest = getattr(artifact.kernels[0], field)
    other_sha = Digest("f" * 64, original.size_bytes)
    other_size = Digest(original.sha256, original.size_bytes + 1)
    ids = {
        serde.artifact_content_id(artifact),
        serde.artifact_content_id(_with_kernel_digest(artifact, field, other_sha)),
        serde.artifact_content_id(_with_kernel_digest(artifact, field, other_size)),
    }
    assert len(ids) == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"key": KernelKey.parse("nvidia/sm_100/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}")},
        {"measurements": Measurements()},
        {"tier": EvidenceTier.VERIFIED},
        {"toolchain": Toolchain("3.5.0", "cuda")},
    ],
    ids=["key", "measurements", "tier", "toolchain"],
)
def test_content_id_changes_with_content(
    key: KernelKey, artifact_factory: Callable[..., Artifact], changes: dict[str, Any]
) -> None:
    artifact = artifact_factory(key)
    assert serde.artifact_content_id(dataclasses.replace(artifact, **changes)) != serde.artifact_content_id(
        artifact
    )


def test_content_id_is_stable_across_a_round_trip(
    key: KernelKey, artifact_factory: Callable[..., Artifact]
) -> None:
    artifact = artifact_factory(key)
    assert serde.artifact_content_id(
        serde.loads(Artifact, serde.dumps(artifact))
    ) == serde.artifact_content_id(artifact)
