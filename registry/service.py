"""The gRPC servicer: protobuf in, domain calls on Registry, protobuf out. No logic here.

Errors are raised as kreg.errors.* and mapped to status codes by registry.handlers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterator

import grpc

from kreg import convert as cv
from kreg.errors import InvalidArgument, Unavailable
from kreg.model import JobState, ResolutionKind
from kreg.v1 import registry_pb2 as pb
from kreg.v1 import registry_pb2_grpc as pb_grpc
from registry import metrics
from registry.blob_replies import BlobReplies
from registry.core import Registry
from registry.handlers import parse_request, raw_request, serialised_reply
from registry.proto_cache import kernel_reply, manifest_parts, manifest_stamp, resolution_to_proto, stored_artifact_to_proto
from registry.store.until_write import UntilWrite

MAX_PAGE_SIZE = 1000
MAX_ID_LENGTH = 128


def _page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size: must not be negative")
    return min(value or 100, MAX_PAGE_SIZE)


def _id(value: str, field: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH or not value.isascii():
        raise InvalidArgument(f"{field}: want a non-empty ASCII id of at most {MAX_ID_LENGTH} characters")
    return value


GET_KERNEL, GET_MANIFEST = "GetKernel", "GetManifest"


@dataclass(frozen=True)
class _KeptReply:
    data: bytes
    outcomes: tuple[tuple[ResolutionKind, bool], ...]  # counted again on every reply (registry.metrics)


def _counted(reply: _KeptReply) -> _KeptReply:
    """Count a kept reply's resolutions as Registry counts the ones it makes."""
    metrics.count_resolutions(reply.outcomes)
    return reply


class KernelRegistryServicer(pb_grpc.KernelRegistryServiceServicer):
    """Registered before the server starts; answers UNAVAILABLE until the store is attached
    (health says NOT_SERVING for that window)."""

    def __init__(self, blob_reply_bytes: int = 256 << 20) -> None:
        self._attached: Registry | None = None
        self._blob_replies = BlobReplies(blob_reply_bytes)
        self._kept_replies: UntilWrite[tuple[str, bytes], _KeptReply] = UntilWrite(lambda: -1)

    def attach(self, registry: Registry) -> None:
        self._attached = registry
        # A fleet sends the same read requests between two publishes: their replies are kept
        # by request bytes until the store's next write, skipping parse, conversion and lookup.
        self._kept_replies = UntilWrite(lambda: registry.generation)

    @property
    def _registry(self) -> Registry:
        if self._attached is None:
            raise Unavailable("the registry's store is not open yet")
        return self._attached

    # ------------------------------------------------------------ reads

    @raw_request
    @serialised_reply
    async def GetKernel(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """A serialised GetKernelResponse (see registry.proto_cache); the same request bytes
        get the same reply bytes until the store's next write."""
        kept = self._kept_replies.get((GET_KERNEL, raw))
        if kept is not None:
            return _counted(kept).data
        since = self._kept_replies.since()
        request = parse_request(pb.GetKernelRequest.FromString, raw, GET_KERNEL)
        resolution = await self._registry.get_kernel(
            cv.key_from_proto(request.key), cv.runtime_from_proto(request.runtime), queue=not request.no_queue
        )
        reply = _KeptReply(kernel_reply(resolution), (metrics.resolution_outcome(resolution),))
        self._kept_replies.put((GET_KERNEL, raw), reply, since)
        return reply.data

    @raw_request
    @serialised_reply
    async def GetManifest(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """A serialised GetManifestResponse (see registry.proto_cache), stamped now; kept like
        GetKernel's, less the stamp."""
        kept = self._kept_replies.get((GET_MANIFEST, raw))
        if kept is None:
            since = self._kept_replies.since()
            request = parse_request(pb.GetManifestRequest.FromString, raw, GET_MANIFEST)
            operators = [cv.operator_from_proto(op, f"operators[{i}]") for i, op in enumerate(request.operators)]
            resolutions = await self._registry.get_manifest(
                request.platform, request.arch, request.model, cv.runtime_from_proto(request.runtime), operators,
                queue=not request.no_queue,
            )
            kept = _KeptReply(manifest_parts(resolutions), tuple(metrics.resolution_outcome(r) for r in resolutions))
            self._kept_replies.put((GET_MANIFEST, raw), kept, since)
        else:
            _counted(kept)
        return kept.data + manifest_stamp(time.time_ns())

    @serialised_reply
    async def FetchBlob(self, request: pb.FetchBlobRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Serialised FetchBlobResponse messages (the interceptor passes bytes through), from
        the kept replies when the whole blob is asked for and was fetched before."""
        digest = cv.digest_from_proto(pb.Digest(sha256=request.sha256), "sha256")
        kept = self._blob_replies.get(digest.sha256) if request.offset == 0 else None
        if kept is not None:
            messages, size = kept
            metrics.BLOB_BYTES_SERVED.inc(size)
            for message in messages:
                yield message
            return
        whole_blob, sent = request.offset == 0, []
        async for whole, offset, chunk in self._registry.fetch_blob(digest.sha256, request.offset):
            first = offset == request.offset
            message = pb.FetchBlobResponse(offset=offset, data=chunk, digest=cv.digest_to_proto(whole) if first else None)
            serialised = message.SerializeToString()
            if whole_blob:  # a resumed fetch's messages are not the whole blob's
                sent.append(serialised)
            yield serialised
        if whole_blob:
            self._blob_replies.put(digest.sha256, tuple(sent), whole.size_bytes)

    async def WatchKernel(self, request: pb.WatchKernelRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchKernelResponse]:
        updates = self._registry.watch_kernel(cv.key_from_proto(request.key), cv.runtime_from_proto(request.runtime))
        async for update in updates:
            yield pb.WatchKernelResponse(
                resolution=resolution_to_proto(update.resolution),
                job=None if update.job is None else cv.job_to_proto(update.job),
            )

    async def ListKernels(self, request: pb.ListKernelsRequest, context: grpc.aio.ServicerContext) -> pb.ListKernelsResponse:
        artifacts, token = self._registry.list_kernels(
            request.platform, request.arch, request.model, request.operator_name, _page_size(request.page_size), request.page_token
        )
        return pb.ListKernelsResponse(artifacts=[stored_artifact_to_proto(a) for a in artifacts], next_page_token=token)

    async def DescribeKernel(self, request: pb.DescribeKernelRequest, context: grpc.aio.ServicerContext) -> pb.DescribeKernelResponse:
        which = request.WhichOneof("target")
        if which == "key":
            artifacts = self._registry.describe_key(cv.key_from_proto(request.key))
        elif which == "artifact_id":
            artifacts = [self._registry.describe_artifact(_id(request.artifact_id, "artifact_id"))]
        else:
            raise InvalidArgument("target: give a key or an artifact_id")
        return pb.DescribeKernelResponse(artifacts=[stored_artifact_to_proto(a) for a in artifacts])

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        job, candidates = self._registry.get_job(_id(request.job_id, "job_id"))
        return pb.GetJobResponse(job=cv.job_to_proto(job), candidates=[cv.candidate_to_proto(c) for c in candidates])

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        state = cv.enum_from_proto_optional(JobState, request.state, "state")
        jobs, token = self._registry.list_jobs(state, _page_size(request.page_size), request.page_token)
        return pb.ListJobsResponse(jobs=[cv.job_to_proto(j) for j in jobs], next_page_token=token)

    async def ListWorkers(self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext) -> pb.ListWorkersResponse:
        workers = self._registry.list_workers(request.include_gone)
        return pb.ListWorkersResponse(workers=[cv.worker_status_to_proto(w) for w in workers])

    # ------------------------------------------------------------ writes

    async def LeaseJob(self, request: pb.LeaseJobRequest, context: grpc.aio.ServicerContext) -> pb.LeaseJobResponse:
        job = await self._registry.lease_job(
            cv.worker_from_proto(request.worker), cv.duration_from_proto(request.wait), cv.duration_from_proto(request.lease_duration)
        )
        return pb.LeaseJobResponse(job=None if job is None else cv.job_to_proto(job))

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: grpc.aio.ServicerContext) -> pb.RenewLeaseResponse:
        job = await self._registry.renew_lease(
            _id(request.job_id, "job_id"), _id(request.lease_id, "lease_id"), cv.duration_from_proto(request.lease_duration), request.progress[:1000]
        )
        return pb.RenewLeaseResponse(lease_expires_at=cv.timestamp_to_proto(job.lease_expires_at))

    async def CompleteJob(self, request: pb.CompleteJobRequest, context: grpc.aio.ServicerContext) -> pb.CompleteJobResponse:
        artifact = await self._registry.complete_job(
            _id(request.job_id, "job_id"),
            _id(request.lease_id, "lease_id"),
            cv.artifact_from_proto(request.artifact),
            [cv.blob_from_proto(b, f"blobs[{i}]") for i, b in enumerate(request.blobs)],
            [cv.candidate_from_proto(c, f"candidates[{i}]") for i, c in enumerate(request.candidates)],
        )
        return pb.CompleteJobResponse(artifact=cv.artifact_to_proto(artifact))

    async def FailJob(self, request: pb.FailJobRequest, context: grpc.aio.ServicerContext) -> pb.FailJobResponse:
        job = await self._registry.fail_job(
            _id(request.job_id, "job_id"),
            _id(request.lease_id, "lease_id"),
            request.reason[:4000],
            request.retryable,
            [cv.candidate_from_proto(c, f"candidates[{i}]") for i, c in enumerate(request.candidates)],
        )
        return pb.FailJobResponse(job=cv.job_to_proto(job))

    async def PublishKernel(self, request: pb.PublishKernelRequest, context: grpc.aio.ServicerContext) -> pb.PublishKernelResponse:
        artifact = await self._registry.publish(
            cv.artifact_from_proto(request.artifact), [cv.blob_from_proto(b, f"blobs[{i}]") for i, b in enumerate(request.blobs)]
        )
        return pb.PublishKernelResponse(artifact=cv.artifact_to_proto(artifact))

    async def RequestGeneration(
        self, request: pb.RequestGenerationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RequestGenerationResponse:
        if not request.keys:
            raise InvalidArgument("keys: at least one key is required")
        keys = [cv.key_from_proto(k, f"keys[{i}]") for i, k in enumerate(request.keys)]
        toolchain = cv.toolchain_from_proto(request.toolchain) if request.HasField("toolchain") else None
        jobs = await self._registry.request_generation(
            keys, request.priority, request.force, cv.tuning_shapes_from_proto(request.tuning_shapes), toolchain
        )
        return pb.RequestGenerationResponse(jobs=[cv.job_to_proto(j) for j in jobs])

    # ------------------------------------------------------------ admin

    async def RetractKernel(self, request: pb.RetractKernelRequest, context: grpc.aio.ServicerContext) -> pb.RetractKernelResponse:
        artifact = await self._registry.retract(_id(request.artifact_id, "artifact_id"), request.reason)
        return pb.RetractKernelResponse(artifact=cv.artifact_to_proto(artifact))
