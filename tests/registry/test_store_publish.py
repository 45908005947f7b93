"""Publishing a job's result: blobs, artifact and job completion commit together or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kreg.errors import DataLoss, FailedPrecondition, InvalidArgument
from kreg.keys import KernelKey
from kreg.model import BlobData, CandidateRecord, CandidateStatus, Digest, Job, JobState, Toolchain
from store_helpers import KEY, T0, artifact, blob, open_store, worker

from registry.store import JobCompletion, Store

LOG = (
    CandidateRecord("BLOCK=128,warps=4", CandidateStatus.PASSED, median_ms=0.21),
    CandidateRecord(
        "BLOCK=256,warps=8", CandidateStatus.OUT_OF_RESOURCES, reason="shared memory 232448 > 227328"
    ),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as s:
        yield s


def _leased(store: Store, lease_seconds: float = 30.0) -> Job:
    store.enqueue(KEY, now=T0)
    job = store.lease(worker("nvidia/sm_90"), lease_seconds=lease_seconds, now=T0)
    assert job is not None
    return job


def _nothing_published(store: Store, blobs: list[BlobData]) -> bool:
    return store.variants(KEY) == [] and all(store.blob_digest(b.digest.sha256) is None for b in blobs)


def test_publish_with_a_live_lease_completes_the_job(store: Store) -> None:
    job = _leased(store)
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0 + 5, job=JobCompletion(job.job_id, job.lease_id, LOG))
    done = store.get_job(job.job_id)
    assert (done.state, done.artifact_id, done.updated_at) == (JobState.SUCCEEDED, stored.artifact_id, T0 + 5)
    assert store.job_candidates(job.job_id) == list(LOG)
    assert store.reap_expired(now=T0 + 10_000) == [], "a completed job holds no lease"


def test_publish_after_the_lease_was_lost_fails_and_leaves_no_artifact(store: Store) -> None:
    job = _leased(store, lease_seconds=10)
    store.reap_expired(now=T0 + 10)
    art, blobs = artifact()
    with pytest.raises(FailedPrecondition, match="not LEASED"):
        store.publish(art, blobs, now=T0 + 11, job=JobCompletion(job.job_id, job.lease_id, LOG))
    assert _nothing_published(store, blobs)
    assert store.get_job(job.job_id).state is JobState.QUEUED
    assert store.job_candidates(job.job_id) == []


def test_publish_with_an_expired_but_unreaped_lease_fails(store: Store) -> None:
    job = _leased(store, lease_seconds=10)
    art, blobs = artifact()
    with pytest.raises(FailedPrecondition, match="expired"):
        store.publish(art, blobs, now=T0 + 10, job=JobCompletion(job.job_id, job.lease_id))
    assert _nothing_published(store, blobs)


def test_publish_with_another_workers_lease_id_fails(store: Store) -> None:
    job = _leased(store)
    art, blobs = artifact()
    with pytest.raises(FailedPrecondition, match="another lease"):
        store.publish(art, blobs, now=T0 + 1, job=JobCompletion(job.job_id, "0" * 32))
    assert _nothing_published(store, blobs)
    assert store.get_job(job.job_id).state is JobState.LEASED


def test_publish_for_a_job_of_another_key_fails(store: Store) -> None:
    job = _leased(store)
    art, blobs = artifact(KernelKey.parse("nvidia/sm_90/dlrm-v2/other_op@1"))
    with pytest.raises(InvalidArgument, match="differs from job"):
        store.publish(art, blobs, now=T0 + 1, job=JobCompletion(job.job_id, job.lease_id))
    assert store.get_job(job.job_id).state is JobState.LEASED



def test_publish_for_a_toolchain_job_needs_binaries_of_that_toolchain(store: Store) -> None:
    triton_39 = Toolchain("3.9.0", "cuda")
    store.enqueue(KEY, toolchain=triton_39, now=T0)
    job = store.lease(replace(worker("nvidia/sm_90"), toolchain=triton_39), lease_seconds=30.0, now=T0)
    assert job is not None
    art, blobs = artifact()  # built with triton 3.6.0
    with pytest.raises(InvalidArgument, match="requires binaries for triton 3.9.0/cuda"):
        store.publish(art, blobs, now=T0 + 1, job=JobCompletion(job.job_id, job.lease_id))
    source_only = replace(art, toolchain=triton_39, kernels=(replace(art.kernels[0], binary=None),))
    with pytest.raises(InvalidArgument, match="no binaries"):
        store.publish(source_only, blobs[:1], now=T0 + 1, job=JobCompletion(job.job_id, job.lease_id))
    assert _nothing_published(store, blobs)
    store.publish(replace(art, toolchain=triton_39), blobs, now=T0 + 1, job=JobCompletion(job.job_id, job.lease_id))
    assert store.get_job(job.job_id).state is JobState.SUCCEEDED


def test_a_corrupt_blob_fails_the_whole_publish(store: Store) -> None:
    job = _leased(store)
    art, blobs = artifact()
    corrupt = replace(blobs[1], data=blobs[1].data + b"!")
    with pytest.raises(DataLoss):
        store.publish(art, [blobs[0], corrupt], now=T0 + 1, job=JobCompletion(job.job_id, job.lease_id))
    assert _nothing_published(store, blobs)
    assert store.get_job(job.job_id).state is JobState.LEASED


def test_retried_completion_with_the_same_lease_returns_the_same_artifact(store: Store) -> None:
    job = _leased(store)
    art, blobs = artifact()
    completion = JobCompletion(job.job_id, job.lease_id, LOG)
    first = store.publish(art, blobs, now=T0 + 1, job=completion)
    assert store.publish(art, blobs, now=T0 + 2, job=completion) == first
    assert store.get_job(job.job_id).updated_at == T0 + 1
    assert store.job_candidates(job.job_id) == list(LOG), "the log is not appended twice"


def test_publish_blob_data_must_match_its_digest_even_without_a_job(store: Store) -> None:
    art, _ = artifact()
    fake = blob(b"x")
    with pytest.raises(DataLoss):
        store.publish(art, [replace(fake, digest=Digest(fake.digest.sha256, 2))], now=T0)
