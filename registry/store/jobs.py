"""The durable job queue: one active job per (key, required toolchain), priority order,
leases that expire.

A job may require a toolchain (a caller that got only source wants a binary it can load);
jobs for one key with different requirements, or with one and without, are different jobs.
Three indexes move with each job record, always in the same transaction:
  job_by_key  key_id (+ toolchain tag) -> the latest job for that pair (at most one QUEUED
              or LEASED job each); a job without a requirement is indexed under the bare
              key_id, so stores written before toolchain requirements read unchanged,
  queue       QUEUED jobs, highest priority then oldest first; the value is the key text,
  leases      LEASED jobs by lease expiry, so reaping reads only the expired prefix.
A worker that stops renewing loses its job to the reaper; each lease counts one attempt.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace

from kreg import serde
from kreg.errors import FailedPrecondition, InvalidArgument, NotFound
from kreg.keys import KernelKey
from kreg.model import ArtifactState, CandidateRecord, Job, JobState, Toolchain, TuningShape, WorkerInfo

from registry.store import kernels
from registry.store.env import Txn
from registry.store.paging import clamp_page_size, scan_start, take_page

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_QUEUE_PREFIX = struct.Struct(">QQ")  # inverted priority, created ns
_LEASE_PREFIX = struct.Struct(">Q")  # expiry ns


def new_job_id(now: float) -> str:
    """32 hex characters: creation milliseconds, then randomness; listing by id lists by creation time."""
    return f"{int(now * 1000) & 0xFFFF_FFFF_FFFF:012x}{uuid.uuid4().hex[:20]}"


def enqueue(
    txn: Txn,
    key: KernelKey,
    priority: int,
    tuning_shapes: Sequence[TuningShape],
    force: bool,
    max_attempts: int,
    now: float,
    toolchain: Toolchain | None = None,
) -> tuple[Job, bool]:
    """Queue generation for `key`, built with `toolchain` when given; returns (job, created).

    A (key, toolchain) pair has at most one active job: a request whose pair has a QUEUED or
    LEASED job merges into it (the higher priority wins). Without `force`, a pair whose
    latest job succeeded and whose kernel is still served is not generated again.
    """
    if not _INT64_MIN <= priority <= _INT64_MAX:
        raise InvalidArgument(f"priority: {priority} is outside the 64-bit range")
    if toolchain is not None and not (toolchain.triton_version and toolchain.backend):
        raise InvalidArgument("toolchain: triton_version and backend are required")
    latest = latest_job(txn, key, toolchain)
    if latest is not None and not latest.state.terminal:
        return _merge(txn, latest, priority, tuple(tuning_shapes), now), False
    if latest is not None and not force and _still_served(txn, latest):
        return latest, False
    job = Job(
        job_id=new_job_id(now),
        key=key,
        state=JobState.QUEUED,
        priority=priority,
        tuning_shapes=tuple(tuning_shapes),
        max_attempts=max_attempts,
        created_at=now,
        updated_at=now,
        toolchain=toolchain,
    )
    _save(txn, job)
    txn.put(txn.dbs.job_by_key, _job_by_key_key(key, toolchain), job.job_id.encode())
    _push_queue(txn, job)
    return job, True


def latest_job(txn: Txn, key: KernelKey, toolchain: Toolchain | None = None) -> Job | None:
    """The latest job for `key` that requires exactly `toolchain`; with None (the default),
    the latest job with no toolchain requirement — the one the read path queues and reports."""
    job_id = txn.get(txn.dbs.job_by_key, _job_by_key_key(key, toolchain))
    return None if job_id is None else get_job(txn, job_id.decode())


def get_job(txn: Txn, job_id: str) -> Job:
    raw = txn.get(txn.dbs.jobs, job_id.encode()) if _JOB_ID.fullmatch(job_id) else None
    if raw is None:
        raise NotFound(f"job {job_id!r} not found")
    return serde.loads(Job, raw)


def list_jobs(txn: Txn, state: JobState | None, page_size: int, page_token: str) -> tuple[list[Job], str]:
    """Jobs in creation order (their ids sort that way), optionally only those in `state`."""
    size = clamp_page_size(page_size)

    def matches() -> Iterator[tuple[str, Job]]:
        for raw_id, raw in txn.scan(txn.dbs.jobs, start=scan_start(page_token)):
            job = serde.loads(Job, raw)
            if state is None or job.state is state:
                yield raw_id.decode(), job

    return take_page(matches(), size)


def lease(txn: Txn, worker: WorkerInfo, lease_seconds: float, now: float) -> Job | None:
    """Lease the highest-priority, oldest queued job this worker can run (`WorkerInfo.can_run`),
    after reaping expired leases; None when there is none.

    The queue holds key text only, so the (platform, arch) check costs no record decode; a
    job record is read only for candidates that pass it, to check the toolchain requirement.
    """
    if lease_seconds <= 0:
        raise InvalidArgument(f"lease_seconds: want a positive duration, got {lease_seconds}")
    reap_expired(txn, now)
    for queue_key, key_text in txn.scan(txn.dbs.queue):
        if not worker.can_serve(KernelKey.parse(key_text.decode())):
            continue
        job = get_job(txn, queue_key[_QUEUE_PREFIX.size :].decode())
        if worker.can_run(job):
            break
    else:
        return None
    txn.delete(txn.dbs.queue, queue_key)
    leased = replace(
        job,
        state=JobState.LEASED,
        lease_id=uuid.uuid4().hex,
        worker_id=worker.worker_id,
        attempts=job.attempts + 1,
        lease_expires_at=now + lease_seconds,
        updated_at=now,
        progress="",
    )
    _save(txn, leased)
    txn.put(txn.dbs.leases, _lease_key(leased), leased.job_id.encode())
    return leased


def renew(txn: Txn, job_id: str, lease_id: str, lease_seconds: float, progress: str, now: float) -> Job:
    """Extend a live lease; `progress`, when given, replaces the job's progress note."""
    if lease_seconds <= 0:
        raise InvalidArgument(f"lease_seconds: want a positive duration, got {lease_seconds}")
    job = _leased_job(txn, job_id, lease_id, now)
    txn.delete(txn.dbs.leases, _lease_key(job))
    renewed = replace(
        job, lease_expires_at=now + lease_seconds, updated_at=now, progress=progress or job.progress
    )
    _save(txn, renewed)
    txn.put(txn.dbs.leases, _lease_key(renewed), job_id.encode())
    return renewed


def complete(
    txn: Txn, job_id: str, lease_id: str, artifact_id: str, candidates: Sequence[CandidateRecord], now: float
) -> Job:
    """Mark a leased job SUCCEEDED with its artifact and append its candidate log.

    Completing again with the same lease and artifact (a retried RPC) returns the job unchanged.
    """
    job = get_job(txn, job_id)
    if job.state is JobState.SUCCEEDED and job.lease_id == lease_id and job.artifact_id == artifact_id:
        return job
    job = _leased_job(txn, job_id, lease_id, now)
    txn.delete(txn.dbs.leases, _lease_key(job))
    append_candidates(txn, job_id, candidates)
    done = replace(
        job, state=JobState.SUCCEEDED, artifact_id=artifact_id, lease_expires_at=0.0, updated_at=now
    )
    _save(txn, done)
    return done


def fail(
    txn: Txn,
    job_id: str,
    lease_id: str,
    reason: str,
    retryable: bool,
    candidates: Sequence[CandidateRecord],
    now: float,
) -> Job:
    """End a lease in failure: QUEUED again when retryable and attempts remain, else FAILED."""
    job = _leased_job(txn, job_id, lease_id, now)
    txn.delete(txn.dbs.leases, _lease_key(job))
    append_candidates(txn, job_id, candidates)
    if retryable and job.attempts < job.max_attempts:
        return _requeue(txn, job, reason, now)
    return _fail(txn, job, reason, now)


def expired_leases(txn: Txn, now: float) -> list[bytes]:
    """The lease index's keys that expired at or before `now` (it is ordered by deadline)."""
    now_ns = _ns(now)
    expired = []
    for lease_key, _ in txn.scan(txn.dbs.leases):
        if _LEASE_PREFIX.unpack_from(lease_key)[0] > now_ns:
            break
        expired.append(lease_key)
    return expired


def reap_expired(txn: Txn, now: float) -> list[Job]:
    """Take back every lease that expired at or before `now`: the job is QUEUED again, or
    FAILED when it has used all its attempts."""
    expired = expired_leases(txn, now)
    reaped = []
    for lease_key in expired:
        txn.delete(txn.dbs.leases, lease_key)
        job = get_job(txn, lease_key[_LEASE_PREFIX.size :].decode())
        reason = f"lease expired (worker {job.worker_id})"
        if job.attempts < job.max_attempts:
            reaped.append(_requeue(txn, job, reason, now))
        else:
            reaped.append(
                _fail(txn, job, f"{reason}; {job.attempts} of {job.max_attempts} attempts used", now)
            )
    return reaped


def candidates(txn: Txn, job_id: str) -> list[CandidateRecord]:
    """The job's candidate log, across all its attempts."""
    get_job(txn, job_id)
    raw = txn.get(txn.dbs.candidates, job_id.encode())
    return [] if raw is None else list(serde.loads(tuple[CandidateRecord, ...], raw))


def append_candidates(txn: Txn, job_id: str, records: Sequence[CandidateRecord]) -> None:
    if records:
        txn.put(txn.dbs.candidates, job_id.encode(), serde.dumps([*candidates(txn, job_id), *records]))


def _leased_job(txn: Txn, job_id: str, lease_id: str, now: float) -> Job:
    """The job, if `lease_id` is its live lease; FailedPrecondition says why not otherwise."""
    job = get_job(txn, job_id)
    if job.state is not JobState.LEASED:
        raise FailedPrecondition(f"job {job_id} is {job.state.name}, not LEASED: the lease was lost")
    if job.lease_id != lease_id:
        raise FailedPrecondition(f"job {job_id} is leased under another lease id: the lease was lost")
    if job.lease_expires_at <= now:
        raise FailedPrecondition(f"the lease on job {job_id} expired at {job.lease_expires_at:.3f}")
    return job


def _merge(txn: Txn, job: Job, priority: int, tuning_shapes: tuple[TuningShape, ...], now: float) -> Job:
    """Fold a duplicate request into the active job: higher priority wins; a queued job that
    has no tuning shapes takes the request's."""
    merged = replace(job, priority=max(job.priority, priority))
    if job.state is JobState.QUEUED and not job.tuning_shapes:
        merged = replace(merged, tuning_shapes=tuning_shapes)
    if merged == job:
        return job
    merged = replace(merged, updated_at=now)
    if job.state is JobState.QUEUED:
        txn.delete(txn.dbs.queue, _queue_key(job))
        _push_queue(txn, merged)
    _save(txn, merged)
    return merged


def _still_served(txn: Txn, job: Job) -> bool:
    return (
        job.state is JobState.SUCCEEDED
        and kernels.get_artifact(txn, job.artifact_id).state is ArtifactState.ACTIVE
    )


def _requeue(txn: Txn, job: Job, reason: str, now: float) -> Job:
    queued = replace(
        job,
        state=JobState.QUEUED,
        lease_id="",
        lease_expires_at=0.0,
        last_error=reason,
        updated_at=now,
        progress="",
    )
    _save(txn, queued)
    _push_queue(txn, queued)
    return queued


def _fail(txn: Txn, job: Job, reason: str, now: float) -> Job:
    failed = replace(job, state=JobState.FAILED, lease_expires_at=0.0, last_error=reason, updated_at=now)
    _save(txn, failed)
    return failed


def _push_queue(txn: Txn, job: Job) -> None:
    txn.put(txn.dbs.queue, _queue_key(job), str(job.key).encode())


def _job_by_key_key(key: KernelKey, toolchain: Toolchain | None) -> bytes:
    """The bare key_id for a job without a requirement; with one, key_id + ':' + the sha256
    of the toolchain, so the index key stays short whatever the toolchain strings hold."""
    if toolchain is None:
        return key.key_id.encode()
    tag = hashlib.sha256(json.dumps([toolchain.triton_version, toolchain.backend]).encode()).hexdigest()
    return f"{key.key_id}:{tag}".encode()


def _queue_key(job: Job) -> bytes:
    """Sorts highest priority first, then oldest; the job id breaks ties."""
    return _QUEUE_PREFIX.pack(_INT64_MAX - job.priority, _ns(job.created_at)) + job.job_id.encode()


def _lease_key(job: Job) -> bytes:
    return _LEASE_PREFIX.pack(_ns(job.lease_expires_at)) + job.job_id.encode()


def _ns(t: float) -> int:
    """Unix seconds as index nanoseconds, clamped to what 8 big-endian bytes hold."""
    return min(max(0, int(t * 1e9)), (1 << 64) - 1)


def _save(txn: Txn, job: Job) -> None:
    txn.put(txn.dbs.jobs, job.job_id.encode(), serde.dumps(job))


def check(txn: Txn) -> list[str]:
    """Jobs whose queue or lease entry is missing or stale, index entries without a job."""
    problems = []
    queued, leased = set(), set()
    for raw_id, raw in txn.scan(txn.dbs.jobs):
        job_id = raw_id.decode(errors="replace")
        try:
            job = serde.loads(Job, raw)
        except Exception as e:  # noqa: BLE001 - any decode failure is the finding
            problems.append(f"job {job_id}: does not decode ({type(e).__name__})")
            continue
        if job.state is JobState.QUEUED:
            queued.add(_queue_key(job))
        elif job.state is JobState.LEASED:
            leased.add(_lease_key(job))
    queue_keys = {k for k, _ in txn.scan(txn.dbs.queue)}
    lease_keys = {k for k, _ in txn.scan(txn.dbs.leases)}
    problems += [f"queued job {k[_QUEUE_PREFIX.size:].decode()} has no queue entry" for k in sorted(queued - queue_keys)]
    problems += [f"queue entry for {k[_QUEUE_PREFIX.size:].decode()}: the job is not queued" for k in sorted(queue_keys - queued)]
    problems += [f"leased job {k[_LEASE_PREFIX.size:].decode()} has no lease entry" for k in sorted(leased - lease_keys)]
    problems += [f"lease entry for {k[_LEASE_PREFIX.size:].decode()}: the job holds no such lease" for k in sorted(lease_keys - leased)]
    for index_key, job_id in txn.scan(txn.dbs.job_by_key):
        if txn.size(txn.dbs.jobs, job_id) is None:
            problems.append(f"job index entry {index_key[:40]!r}: job {job_id.decode(errors='replace')} is missing")
    return problems
