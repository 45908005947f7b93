"""The registry's behaviour on domain types: resolve, queue, lease, publish, watch.

The gRPC servicer (service.py) converts messages and calls these methods; nothing here
sees protobuf. LMDB writes (and blob reads, which hash up to hundreds of MiB) run on one
writer thread so the event loop keeps serving reads while a transaction syncs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import AsyncIterator, Callable, Iterator, Sequence, TypeVar

from kreg.errors import FailedPrecondition, InvalidArgument
from kreg.keys import KernelKey, OperatorSpec
from kreg.profiles import tuning_shapes as profile_tuning_shapes
from kreg.model import (
    Artifact,
    ArtifactState,
    BlobData,
    CandidateRecord,
    Digest,
    Job,
    JobState,
    Resolution,
    ResolutionKind,
    Runtime,
    Toolchain,
    TuningShape,
    WorkerInfo,
    WorkerStatus,
)
from kreg.resolve import resolve
from registry import metrics
from registry.notify import Notifier, wait_for
from registry.store import JobCompletion, KeyState, Store, StoreStats
from registry.store.until_write import UntilWrite
from registry.workers import WorkerRoster

log = logging.getLogger(__name__)
T = TypeVar("T")

BLOB_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RegistryLimits:
    """Bounds on what callers may ask for; values validated by the server config."""

    max_lease_wait_s: float = 30.0
    default_lease_s: float = 60.0
    max_lease_s: float = 3600.0
    reap_interval_s: float = 1.0
    max_manifest_operators: int = 1000
    max_request_keys: int = 1000
    max_tuning_shapes: int = 64
    max_candidates: int = 10_000  # records per CompleteJob / FailJob
    max_reason_chars: int = 8192  # a failure's or retraction's reason
    # How long a worker counts as live past the end of its poll or lease (the gap before its
    # next call): what decides that a queued job has no worker (registry.workers).
    worker_grace_s: float = 15.0


def _at_most(what: str, count: int, limit: int) -> None:
    if count > limit:
        raise InvalidArgument(f"{what}: {count} > limit {limit}")


@dataclass(frozen=True)
class WatchUpdate:
    resolution: Resolution
    job: Job | None


class Registry:
    def __init__(self, store: Store, limits: RegistryLimits = RegistryLimits()) -> None:
        self._store = store
        self._limits = limits
        self._notifier = Notifier()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdb-writer")
        self._draining = False
        self._roster = WorkerRoster(limits.worker_grace_s, started_at=time.time())
        # Answers of the read path, kept until the store's next write (registry.store.until_write).
        self._resolved: UntilWrite[tuple[KernelKey, Toolchain | None, bool], tuple[KeyState, Resolution]] = UntilWrite(
            lambda: store.generation
        )
        self._manifests: UntilWrite[tuple[object, ...], list[Resolution]] = UntilWrite(lambda: store.generation)

    @property
    def generation(self) -> int:
        """The store's committed writes so far (see registry.store.until_write)."""
        return self._store.generation

    async def _write(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def drain(self) -> None:
        """End long polls now (they answer 'no job'), so a graceful stop is not held up by
        idle workers waiting for work."""
        self._draining = True
        self._notifier.notify_jobs()

    # ------------------------------------------------------------ resolution

    async def get_kernel(self, key: KernelKey, runtime: Runtime, *, queue: bool = True) -> Resolution:
        (state,) = self._store.lookup([key])
        return await self._resolve(key, state, runtime, queue)

    async def _resolve(self, key: KernelKey, state: KeyState, runtime: Runtime, queue: bool) -> Resolution:
        """The resolution of `key` for `runtime`, queueing a job on a first miss. Resolutions
        that queued nothing are kept until the store's next write: a fleet of serving hosts
        asks the same (key, toolchain) questions, and resolving explains every variant."""
        since = self._resolved.since()
        cached = self._resolved.get((key, runtime.toolchain, queue))
        if cached is not None and cached[0] is state:
            metrics.count_resolutions((metrics.resolution_outcome(cached[1]),))
            return cached[1]
        resolution = await self._resolve_fresh(key, state, runtime, queue)
        self._resolved.put((key, runtime.toolchain, queue), (state, resolution), since)
        return resolution

    async def _resolve_fresh(self, key: KernelKey, state: KeyState, runtime: Runtime, queue: bool) -> Resolution:
        variants, job = state.variants, state.job
        failed = ""
        if job is not None and job.state is JobState.FAILED:
            failed = job.last_error or "no reason recorded"
        resolution = resolve(key, runtime, variants, failed_job_error=failed)
        # Only a key nobody ever tried is queued from the read path: a failed generation is
        # retried on purpose (RequestGeneration), never in a loop driven by cache misses.
        if resolution.kind is ResolutionKind.REFERENCE and not variants and queue and job is None:
            shapes = profile_tuning_shapes(key.model, key.operator)
            queued, created = await self._write(self._store.enqueue, key, tuning_shapes=shapes, now=time.time())
            if created:  # not when a manifest names the same operator twice
                self._notifier.notify_jobs()
                metrics.JOBS_QUEUED.inc()
            resolution = _with_job(resolution, queued, f"{resolution.reason}; generation job {queued.job_id} queued")
        elif job is not None and not job.state.terminal:
            resolution = _with_job(resolution, job, resolution.reason)
        metrics.count_resolutions((metrics.resolution_outcome(resolution),))
        return resolution

    async def get_manifest(
        self, platform: str, arch: str, model: str, runtime: Runtime, operators: Sequence[OperatorSpec], *, queue: bool = True
    ) -> list[Resolution]:
        if len(operators) > self._limits.max_manifest_operators:
            raise InvalidArgument(f"operators: {len(operators)} > limit {self._limits.max_manifest_operators}")
        # A fleet's hosts of one model send the same manifest request: its answer, like each
        # resolution's, stands until the store's next write (checked in _resolve's cache too).
        asked = (platform, arch, model, tuple(operators), runtime.toolchain, queue)
        since = self._manifests.since()
        cached = self._manifests.get(asked)
        if cached is not None:
            metrics.count_resolutions(metrics.resolution_outcome(r) for r in cached)
            return cached
        try:
            keys = [KernelKey(platform, arch, model, op) for op in operators]
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        resolutions = [await self._resolve(k, state, runtime, queue) for k, state in zip(keys, self._store.lookup(keys))]
        self._manifests.put(asked, resolutions, since)
        return resolutions

    async def watch_kernel(self, key: KernelKey, runtime: Runtime) -> AsyncIterator[WatchUpdate]:
        """Yield the key's state now and after every change, until a kernel is served or
        its generation ended without one."""
        while True:
            changed = self._notifier.key_event(key.key_id)
            resolution = await self.get_kernel(key, runtime)
            job = self._store.latest_job(key)
            if job is not None:
                (job,) = self._roster.explain([job], time.time())
            yield WatchUpdate(resolution, job)
            if resolution.kind is not ResolutionKind.REFERENCE or job is None or job.state.terminal:
                return
            await changed.wait()

    # ------------------------------------------------------------ blobs and kernels

    async def fetch_blob(self, sha256: str, offset: int) -> AsyncIterator[tuple[Digest, int, bytes]]:
        """(digest, offset, chunk) triples from `offset` on; the blob is verified first."""
        data = await self._write(self._store.get_blob, sha256)
        if offset > len(data):
            raise InvalidArgument(f"offset {offset} is past the end of the blob ({len(data)} bytes)")
        digest = Digest(sha256, len(data))
        view = memoryview(data)
        if offset == len(data):
            yield digest, offset, b""
        for start in range(offset, len(data), BLOB_CHUNK_BYTES):
            chunk = bytes(view[start : start + BLOB_CHUNK_BYTES])
            metrics.BLOB_BYTES_SERVED.inc(len(chunk))
            yield digest, start, chunk

    def list_kernels(self, platform: str, arch: str, model: str, operator_name: str, page_size: int, page_token: str) -> tuple[list[Artifact], str]:
        return self._store.list_artifacts(
            platform=platform, arch=arch, model=model, operator_name=operator_name, page_size=page_size, page_token=page_token
        )

    def describe_key(self, key: KernelKey) -> list[Artifact]:
        return self._store.variants(key)

    def describe_artifact(self, artifact_id: str) -> Artifact:
        return self._store.get_artifact(artifact_id)

    async def publish(self, artifact: Artifact, blobs: Sequence[BlobData]) -> Artifact:
        stored = await self._write(self._store.publish, artifact, blobs, now=time.time())
        _observe_blobs(blobs)
        self._notifier.notify_key(stored.key.key_id)
        return stored

    async def retract(self, artifact_id: str, reason: str) -> Artifact:
        if not reason:
            raise InvalidArgument("reason: say why the kernel is retracted (it is kept in the audit trail)")
        _at_most("reason (characters)", len(reason), self._limits.max_reason_chars)
        artifact = await self._write(self._store.retract, artifact_id, reason, now=time.time())
        self._notifier.notify_key(artifact.key.key_id)
        return artifact

    # ------------------------------------------------------------ jobs

    def get_job(self, job_id: str) -> tuple[Job, list[CandidateRecord]]:
        (job,) = self._roster.explain([self._store.get_job(job_id)], time.time())
        return job, self._store.job_candidates(job_id)

    def list_jobs(self, state: JobState | None, page_size: int, page_token: str) -> tuple[list[Job], str]:
        jobs, token = self._store.list_jobs(state=state, page_size=page_size, page_token=page_token)
        return self._roster.explain(jobs, time.time()), token

    def list_workers(self, include_gone: bool) -> list[WorkerStatus]:
        return self._roster.workers(time.time(), include_gone)

    # ------------------------------------------------------------ what metrics read at scrape

    def store_stats(self) -> StoreStats:
        return self._store.stats()

    def all_artifacts(self) -> Iterator[Artifact]:
        token = ""
        while True:
            page, token = self._store.list_artifacts(page_size=1000, page_token=token)
            yield from page
            if not token:
                return

    async def request_generation(
        self,
        keys: Sequence[KernelKey],
        priority: int,
        force: bool,
        tuning_shapes: tuple[TuningShape, ...],
        toolchain: Toolchain | None = None,
    ) -> list[Job]:
        """Queue generation for `keys`; with `toolchain`, jobs only a worker with exactly that
        toolchain leases, so a caller that got only source can get a binary it can load.
        Without `tuning_shapes` a key of a profiled model is tuned on its profile's shapes."""
        _at_most("keys", len(keys), self._limits.max_request_keys)
        _at_most("tuning_shapes", len(tuning_shapes), self._limits.max_tuning_shapes)
        jobs = []
        for key in keys:
            if not force and any(_serves(a, toolchain) for a in self._store.variants(key)):
                continue  # already served; `force` regenerates anyway
            job, _ = await self._write(
                self._store.enqueue,
                key,
                priority=priority,
                tuning_shapes=tuning_shapes or profile_tuning_shapes(key.model, key.operator),
                force=force,
                toolchain=toolchain,
                now=time.time(),
            )
            self._notifier.notify_key(key.key_id)
            jobs.append(job)
        if jobs:
            self._notifier.notify_jobs()
            metrics.JOBS_QUEUED.inc(len(jobs))
        return jobs

    def _lease_seconds(self, requested: float) -> float:
        if requested < 0:
            raise InvalidArgument("lease_duration: must not be negative")
        return min(requested or self._limits.default_lease_s, self._limits.max_lease_s)

    async def lease_job(self, worker: WorkerInfo, wait_s: float, lease_s: float) -> Job | None:
        """Long-poll: a job this worker can serve, or None after `wait_s` (capped)."""
        lease_seconds = self._lease_seconds(lease_s)
        wait = min(max(wait_s, 0.0), self._limits.max_lease_wait_s)
        deadline = time.monotonic() + wait
        now = time.time()
        self._roster.polling(worker, now, until=now + wait)
        while True:
            queued = self._notifier.jobs_event()
            job = await self._write(self._store.lease, worker, lease_seconds=lease_seconds, now=time.time())
            if job is not None:
                self._roster.holding(worker, job, time.time())
                self._notifier.notify_key(job.key.key_id)
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._draining:
                self._roster.polling(worker, time.time(), until=time.time())
                return None
            # Wake at least every reap interval: an expired lease re-queues a job without a notify.
            await wait_for(queued, min(remaining, self._limits.reap_interval_s))

    async def renew_lease(self, job_id: str, lease_id: str, lease_s: float, progress: str) -> Job:
        job = await self._write(
            self._store.renew, job_id, lease_id, lease_seconds=self._lease_seconds(lease_s), progress=progress, now=time.time()
        )
        self._roster.renewed(job, time.time())
        self._notifier.notify_key(job.key.key_id)
        return job

    async def complete_job(
        self, job_id: str, lease_id: str, artifact: Artifact, blobs: Sequence[BlobData], candidates: Sequence[CandidateRecord]
    ) -> Artifact:
        _at_most("candidates", len(candidates), self._limits.max_candidates)
        job = self._store.get_job(job_id)
        if artifact.key != job.key:
            raise InvalidArgument(f"artifact.key {artifact.key} differs from job {job_id}'s key {job.key}")
        if job.state is not JobState.LEASED:
            raise FailedPrecondition(f"job {job_id} is {job.state.name}, not LEASED: the lease was lost")
        stored = await self._write(
            self._store.publish, artifact, blobs, now=time.time(), job=JobCompletion(job_id, lease_id, tuple(candidates))
        )
        _observe_blobs(blobs)
        metrics.JOB_ENDED["succeeded"].observe(time.time() - job.created_at)
        self._roster.released(job, time.time())
        self._notifier.notify_key(job.key.key_id)
        return stored

    async def fail_job(self, job_id: str, lease_id: str, reason: str, retryable: bool, candidates: Sequence[CandidateRecord]) -> Job:
        if not reason:
            raise InvalidArgument("reason: say why the job failed")
        _at_most("reason (characters)", len(reason), self._limits.max_reason_chars)
        _at_most("candidates", len(candidates), self._limits.max_candidates)
        job = await self._write(
            self._store.fail, job_id, lease_id, reason=reason, retryable=retryable, candidates=tuple(candidates), now=time.time()
        )
        self._roster.released(job, time.time())  # a failed job keeps its last worker_id
        if job.state is JobState.FAILED:
            metrics.JOB_ENDED["failed"].observe(time.time() - job.created_at)
        self._notifier.notify_key(job.key.key_id)
        if job.state is JobState.QUEUED:
            self._notifier.notify_jobs()
        return job

    async def reap_forever(self) -> None:
        """Re-queue jobs whose worker stopped renewing, even when no worker is leasing."""
        while True:
            await asyncio.sleep(self._limits.reap_interval_s)
            try:
                jobs = await self._write(self._store.reap_expired, now=time.time())
            except Exception:  # a failed sweep must not kill the server; the next one retries
                log.exception("lease reaper failed")
                continue
            for job in jobs:
                log.info("lease expired: job %s for %s is now %s", job.job_id, job.key, job.state.name)
                if job.state is JobState.FAILED:
                    metrics.JOB_ENDED["failed"].observe(time.time() - job.created_at)
                self._notifier.notify_key(job.key.key_id)
            if jobs:
                self._notifier.notify_jobs()


def _observe_blobs(blobs: Sequence[BlobData]) -> None:
    for blob in blobs:
        metrics.BLOB_SIZE.observe(len(blob.data))


def _serves(artifact: Artifact, toolchain: Toolchain | None) -> bool:
    """Whether `artifact` already answers a generation request: any active variant does when
    no toolchain is asked for; otherwise only one with binaries built by exactly that one."""
    if artifact.state is not ArtifactState.ACTIVE:
        return False
    return toolchain is None or (artifact.toolchain == toolchain and artifact.has_binaries)


def _with_job(resolution: Resolution, job: Job, reason: str) -> Resolution:
    return replace(resolution, job_id=job.job_id, reason=reason)
