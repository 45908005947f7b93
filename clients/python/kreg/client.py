"""kreg.Client: the registry's Python client, one of the two protobuf edges.

Every call has a deadline. Reads retry on UNAVAILABLE with jittered backoff inside that
deadline; writes never retry (a publish or lease is not known to be idempotent from here).
Blobs come through the node-local cache: verified on read, fetched resumably by offset.
The client is thread-safe; AsyncClient runs the same calls off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import grpc

from kreg import convert as cv
from kreg import logs
from kreg.cache import BlobCache
from kreg.credentials import Credentials
from kreg.errors import DataLoss, KregError, Unavailable, error_from_status
from kreg.keys import KernelKey, OperatorSpec
from kreg.lockfile import Lockfile
from kreg.model import (
    Artifact,
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
from kreg.v1 import registry_pb2 as pb
from kreg.v1 import registry_pb2_grpc as pb_grpc

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Publishes carry binaries; replies are paged or chunked. Match the server's defaults.
MAX_SEND_BYTES = 64 << 20
MAX_RECEIVE_BYTES = 16 << 20


@dataclass(frozen=True)
class WatchUpdate:
    resolution: Resolution
    job: Job | None


def _raise_domain(e: grpc.RpcError) -> KregError:
    return error_from_status(e.code(), e.details() or "")


class Client:
    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 10.0,
        read_retries: int = 4,
        runtime: Runtime = Runtime(),
        cache_dir: Path | None = None,
        channel: grpc.Channel | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials`: the token and TLS material to present (default: from the
        environment, see kreg.credentials)."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.target = target
        self.timeout_s = timeout_s
        self.read_retries = read_retries
        self.runtime = runtime
        self.cache = BlobCache(cache_dir) if cache_dir is not None else None
        self.credentials = credentials if credentials is not None else Credentials.from_env()
        self._metadata = self.credentials.metadata()
        self._channel = channel or self.credentials.channel(
            target,
            [
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ],
        )
        self._stub = pb_grpc.KernelRegistryServiceStub(self._channel)
        self._cache_writer: ThreadPoolExecutor | None = None  # fetch_blobs' write-behind
        self._writer_lock = threading.Lock()

    def close(self) -> None:
        self.flush_cache()
        self._channel.close()

    def flush_cache(self) -> None:
        """Wait until every blob fetch_blobs handed to the node cache is on disk."""
        with self._writer_lock:
            writer, self._cache_writer = self._cache_writer, None
        if writer is not None:
            writer.shutdown(wait=True)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ call plumbing

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        """Credentials plus a request id (kreg.logs): the one being served, else a new one."""
        return self._metadata + ((logs.REQUEST_ID_HEADER, logs.request_id.get() or logs.new_request_id()),)

    def _call(self, fn: Callable[..., T], request: Any, *, read: bool, timeout_s: float | None = None) -> T:
        """One unary call with a deadline; reads retry UNAVAILABLE until the deadline (under
        one request id)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        metadata = self._call_metadata()
        while True:
            remaining = deadline - time.monotonic()
            try:
                return fn(request, timeout=max(remaining, 0.001), metadata=metadata)
            except grpc.RpcError as e:
                attempt += 1
                retry = read and e.code() == grpc.StatusCode.UNAVAILABLE and attempt <= self.read_retries
                pause = min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0)
                if not retry or time.monotonic() + pause >= deadline:
                    raise _raise_domain(e) from None
                time.sleep(pause)

    # ------------------------------------------------------------ reads

    def get_kernel(self, key: KernelKey, *, queue: bool = True, timeout_s: float | None = None) -> Resolution:
        request = pb.GetKernelRequest(key=cv.key_to_proto(key), runtime=cv.runtime_to_proto(self.runtime), no_queue=not queue)
        response = self._call(self._stub.GetKernel, request, read=True, timeout_s=timeout_s)
        return cv.resolution_from_proto(response.resolution)

    def get_manifest(
        self, platform: str, arch: str, model: str, operators: Sequence[OperatorSpec], *, queue: bool = True, timeout_s: float | None = None
    ) -> list[Resolution]:
        request = pb.GetManifestRequest(
            platform=platform,
            arch=arch,
            model=model,
            runtime=cv.runtime_to_proto(self.runtime),
            operators=[cv.operator_to_proto(op) for op in operators],
            no_queue=not queue,
        )
        response = self._call(self._stub.GetManifest, request, read=True, timeout_s=timeout_s)
        return [cv.resolution_from_proto(r) for r in response.resolutions]

    def fetch_blob(self, digest: Digest, *, timeout_s: float | None = None) -> bytes:
        """The blob's bytes, verified: from the node cache, else streamed (resuming from
        the bytes already received after a dropped stream) and stored in the cache."""
        if self.cache is not None:
            cached = self.cache.get(digest)
            if cached is not None:
                return cached
            return self._fetch_into_cache(digest, timeout_s)
        buffer = bytearray()
        self._stream_blob(digest, 0, buffer.extend, timeout_s)
        return _verified(digest, bytes(buffer))

    def fetch_blobs(
        self,
        digests: Iterable[Digest],
        *,
        parallel: int = 8,
        timeout_s: float | None = None,
        on_fetched: Callable[[Digest], object] = lambda digest: None,
    ) -> dict[Digest, bytes]:
        """Many blobs' verified bytes, for a serving host's start: `parallel` streams at a time
        over the one channel, so the round trips overlap. Blobs the node cache lacks are
        streamed into memory, verified and returned at once; writing them to the cache (a
        disk sync each) happens behind, on one thread (`flush_cache` and `close` wait for it).
        `on_fetched` hears of each blob as it arrives (from the fetching threads). The first
        failure is raised once every fetch has ended."""
        unique = list(dict.fromkeys(digests))
        if len(unique) <= 1 or parallel <= 1:
            return {d: self._fetch_for_start(d, timeout_s, on_fetched) for d in unique}
        with ThreadPoolExecutor(max_workers=min(parallel, len(unique)), thread_name_prefix="kreg-fetch") as pool:
            futures = {d: pool.submit(self._fetch_for_start, d, timeout_s, on_fetched) for d in unique}
        return {d: f.result() for d, f in futures.items()}

    def _fetch_for_start(self, digest: Digest, timeout_s: float | None, on_fetched: Callable[[Digest], object]) -> bytes:
        data = self._fetch_into_memory(digest, timeout_s)
        on_fetched(digest)
        return data

    def _fetch_into_memory(self, digest: Digest, timeout_s: float | None) -> bytes:
        if self.cache is not None:
            cached = self.cache.get(digest)
            if cached is not None:
                return cached
        buffer = bytearray()
        self._stream_blob(digest, 0, buffer.extend, timeout_s)
        data = _verified(digest, bytes(buffer))
        if self.cache is not None:
            with self._writer_lock:
                if self._cache_writer is None:
                    self._cache_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kreg-cache-write")
                self._cache_writer.submit(self._write_behind, digest, data)
        return data

    def _write_behind(self, digest: Digest, data: bytes) -> None:
        assert self.cache is not None
        try:
            self.cache.put(digest, data)
        except OSError as e:  # a full or read-only disk costs a later re-fetch, not this start
            logger.warning("node cache: could not store blob %s: %s", digest.sha256[:12], e)

    def _fetch_into_cache(self, digest: Digest, timeout_s: float | None) -> bytes:
        assert self.cache is not None
        partial = self.cache.partial_path(digest)
        with open(partial, "ab") as out:
            self._stream_blob(digest, self.cache.partial_size(digest), out.write, timeout_s)
        return self.cache.commit_partial(digest)

    def _stream_blob(self, digest: Digest, offset: int, sink: Callable[[bytes], object], timeout_s: float | None) -> None:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        metadata = self._call_metadata()
        while True:
            try:
                stream = self._stub.FetchBlob(
                    pb.FetchBlobRequest(sha256=digest.sha256, offset=offset),
                    timeout=max(deadline - time.monotonic(), 0.001),
                    metadata=metadata,
                )
                for chunk in stream:
                    if chunk.offset != offset:
                        raise DataLoss(f"blob {digest.sha256[:12]}: chunk at offset {chunk.offset}, expected {offset}")
                    sink(chunk.data)
                    offset += len(chunk.data)
                return
            except grpc.RpcError as e:
                attempt += 1
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt > self.read_retries or time.monotonic() >= deadline:
                    raise _raise_domain(e) from None
                time.sleep(min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))

    def watch_kernel(self, key: KernelKey, *, timeout_s: float) -> Iterator[WatchUpdate]:
        """Updates for `key` until a kernel is served or its generation ends."""
        request = pb.WatchKernelRequest(key=cv.key_to_proto(key), runtime=cv.runtime_to_proto(self.runtime))
        try:
            for msg in self._stub.WatchKernel(request, timeout=timeout_s, metadata=self._call_metadata()):
                yield WatchUpdate(
                    cv.resolution_from_proto(msg.resolution), cv.job_from_proto(msg.job) if msg.HasField("job") else None
                )
        except grpc.RpcError as e:
            raise _raise_domain(e) from None

    def wait_for_kernel(self, key: KernelKey, *, timeout_s: float, on_update: Callable[[WatchUpdate], None] | None = None) -> Resolution:
        """Block until `key` resolves to a kernel or its generation ends; returns the last resolution."""
        last: Resolution | None = None
        for update in self.watch_kernel(key, timeout_s=timeout_s):
            last = update.resolution
            if on_update is not None:
                on_update(update)
        if last is None:
            raise Unavailable(f"watch of {key} ended without an update")
        return last

    def list_kernels(
        self, *, platform: str = "", arch: str = "", model: str = "", operator_name: str = "", page_size: int = 100, page_token: str = ""
    ) -> tuple[list[Artifact], str]:
        request = pb.ListKernelsRequest(
            platform=platform, arch=arch, model=model, operator_name=operator_name, page_size=page_size, page_token=page_token
        )
        response = self._call(self._stub.ListKernels, request, read=True)
        return [cv.artifact_from_proto(a) for a in response.artifacts], response.next_page_token

    def iter_kernels(self, **filters: str) -> Iterator[Artifact]:
        token = ""
        while True:
            page, token = self.list_kernels(page_token=token, **filters)
            yield from page
            if not token:
                return

    def describe_kernel(self, target: KernelKey | str) -> list[Artifact]:
        """All variants of a key (retracted too), or one artifact by id."""
        if isinstance(target, KernelKey):
            request = pb.DescribeKernelRequest(key=cv.key_to_proto(target))
        else:
            request = pb.DescribeKernelRequest(artifact_id=target)
        response = self._call(self._stub.DescribeKernel, request, read=True)
        return [cv.artifact_from_proto(a) for a in response.artifacts]

    def get_job(self, job_id: str) -> tuple[Job, list[CandidateRecord]]:
        response = self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), read=True)
        return cv.job_from_proto(response.job), [cv.candidate_from_proto(c) for c in response.candidates]

    def list_jobs(self, *, state: JobState | None = None, page_size: int = 100, page_token: str = "") -> tuple[list[Job], str]:
        request = pb.ListJobsRequest(state=0 if state is None else cv.enum_to_proto(state), page_size=page_size, page_token=page_token)
        response = self._call(self._stub.ListJobs, request, read=True)
        return [cv.job_from_proto(j) for j in response.jobs], response.next_page_token

    def list_workers(self, *, include_gone: bool = False) -> list[WorkerStatus]:
        """The workers the registry has heard from lately (with `include_gone`, since it started)."""
        response = self._call(self._stub.ListWorkers, pb.ListWorkersRequest(include_gone=include_gone), read=True)
        return [cv.worker_status_from_proto(w) for w in response.workers]

    # ------------------------------------------------------------ writes

    def lease_job(self, worker: WorkerInfo, *, wait_s: float, lease_s: float) -> Job | None:
        request = pb.LeaseJobRequest(
            worker=cv.worker_to_proto(worker), wait=cv.duration_to_proto(wait_s), lease_duration=cv.duration_to_proto(lease_s)
        )
        response = self._call(self._stub.LeaseJob, request, read=False, timeout_s=wait_s + self.timeout_s)
        return cv.job_from_proto(response.job) if response.HasField("job") else None

    def renew_lease(self, job_id: str, lease_id: str, *, lease_s: float, progress: str = "") -> float:
        request = pb.RenewLeaseRequest(job_id=job_id, lease_id=lease_id, lease_duration=cv.duration_to_proto(lease_s), progress=progress)
        response = self._call(self._stub.RenewLease, request, read=False)
        return cv.timestamp_from_proto(response.lease_expires_at)

    def complete_job(
        self, job_id: str, lease_id: str, artifact: Artifact, blobs: Sequence[BlobData], candidates: Sequence[CandidateRecord] = ()
    ) -> Artifact:
        request = pb.CompleteJobRequest(
            job_id=job_id,
            lease_id=lease_id,
            artifact=cv.artifact_to_proto(artifact),
            blobs=[cv.blob_to_proto(b) for b in blobs],
            candidates=[cv.candidate_to_proto(c) for c in candidates],
        )
        return cv.artifact_from_proto(self._call(self._stub.CompleteJob, request, read=False).artifact)

    def fail_job(
        self, job_id: str, lease_id: str, *, reason: str, retryable: bool, candidates: Sequence[CandidateRecord] = ()
    ) -> Job:
        request = pb.FailJobRequest(
            job_id=job_id, lease_id=lease_id, reason=reason, retryable=retryable, candidates=[cv.candidate_to_proto(c) for c in candidates]
        )
        return cv.job_from_proto(self._call(self._stub.FailJob, request, read=False).job)

    def publish(self, artifact: Artifact, blobs: Sequence[BlobData]) -> Artifact:
        request = pb.PublishKernelRequest(artifact=cv.artifact_to_proto(artifact), blobs=[cv.blob_to_proto(b) for b in blobs])
        return cv.artifact_from_proto(self._call(self._stub.PublishKernel, request, read=False).artifact)

    def request_generation(
        self,
        keys: Sequence[KernelKey],
        *,
        priority: int = 0,
        force: bool = False,
        tuning_shapes: Sequence[TuningShape] = (),
        toolchain: Toolchain | None = None,
    ) -> list[Job]:
        """Queue generation; `toolchain` asks for binaries built by exactly that toolchain
        (e.g. after a SOURCE resolution), leased only by workers that have it."""
        request = pb.RequestGenerationRequest(
            keys=[cv.key_to_proto(k) for k in keys],
            priority=priority,
            force=force,
            tuning_shapes=cv.tuning_shapes_to_proto(tuple(tuning_shapes)),
            toolchain=cv.toolchain_to_proto(toolchain),
        )
        return [cv.job_from_proto(j) for j in self._call(self._stub.RequestGeneration, request, read=False).jobs]

    def retract(self, artifact_id: str, reason: str) -> Artifact:
        request = pb.RetractKernelRequest(artifact_id=artifact_id, reason=reason)
        return cv.artifact_from_proto(self._call(self._stub.RetractKernel, request, read=False).artifact)

    # ------------------------------------------------------------ serving-host start

    def pin_manifest(
        self,
        platform: str,
        arch: str,
        model: str,
        operators: Sequence[OperatorSpec],
        path: Path,
        *,
        on_pinned: Callable[[Lockfile], object] = lambda lock: None,
        on_fetched: Callable[[Digest], object] = lambda digest: None,
    ) -> Lockfile:
        """Resolve a model's kernels, fetch every pinned blob into the cache, write the lockfile.
        `on_pinned` sees the lock before its blobs are fetched; `on_fetched` each blob fetched."""
        resolutions = self.get_manifest(platform, arch, model, operators)
        lock = Lockfile(platform, arch, model, self.runtime.toolchain, time.time(), tuple(resolutions))
        on_pinned(lock)
        self.fetch_blobs(lock.digests(), on_fetched=on_fetched)
        lock.save(path)
        return lock


def _verified(digest: Digest, data: bytes) -> bytes:
    if len(data) != digest.size_bytes or hashlib.sha256(data).hexdigest() != digest.sha256:
        raise DataLoss(f"blob {digest.sha256[:12]}: received bytes do not match the digest")
    return data


def start_manifest(
    client: Client | None, platform: str, arch: str, model: str, operators: Sequence[OperatorSpec], *, lockfile: Path | None = None
) -> list[Resolution]:
    """A serving host's start: the registry if it answers within the client's deadline,
    else the lockfile (offline start), else reference directives for every operator."""
    if client is not None:
        try:
            return client.get_manifest(platform, arch, model, operators)
        except KregError:
            pass
    if lockfile is not None and lockfile.exists():
        lock = Lockfile.load(lockfile)
        pinned = {r.key: r for r in lock.resolutions}
        keys = [KernelKey(platform, arch, model, op) for op in operators]
        return [pinned.get(k) or Resolution(k, ResolutionKind.REFERENCE, "registry unreachable; key not in the lockfile") for k in keys]
    return [
        Resolution(KernelKey(platform, arch, model, op), ResolutionKind.REFERENCE, "registry unreachable and no lockfile")
        for op in operators
    ]


class AsyncClient:
    """The same calls for asyncio code: each runs on a worker thread, never blocking the loop."""

    def __init__(self, client: Client) -> None:
        self.sync = client

    async def get_kernel(self, key: KernelKey, *, queue: bool = True) -> Resolution:
        return await asyncio.to_thread(self.sync.get_kernel, key, queue=queue)

    async def get_manifest(self, platform: str, arch: str, model: str, operators: Sequence[OperatorSpec], *, queue: bool = True) -> list[Resolution]:
        return await asyncio.to_thread(self.sync.get_manifest, platform, arch, model, operators, queue=queue)

    async def fetch_blob(self, digest: Digest) -> bytes:
        return await asyncio.to_thread(self.sync.fetch_blob, digest)

    async def wait_for_kernel(self, key: KernelKey, *, timeout_s: float) -> Resolution:
        return await asyncio.to_thread(self.sync.wait_for_kernel, key, timeout_s=timeout_s)

    async def describe_kernel(self, target: KernelKey | str) -> list[Artifact]:
        return await asyncio.to_thread(self.sync.describe_kernel, target)

    async def get_job(self, job_id: str) -> tuple[Job, list[CandidateRecord]]:
        return await asyncio.to_thread(self.sync.get_job, job_id)

    def close(self) -> None:
        self.sync.close()
