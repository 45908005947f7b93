"""Request ids and the standard gRPC metrics of a live registry: the caller's x-request-id (or
one the registry makes) comes back in the reply's trailing metadata and is written to the
audit log; every call is counted under its method and status code and timed."""

from __future__ import annotations

import json

import grpc
from kreg import convert as cv
from kreg import logs
from kreg.client import Client
from kreg.errors import NotFound
from kreg.model import Runtime
from kreg.v1 import registry_pb2 as pb
from kreg.v1 import registry_pb2_grpc as pb_grpc
from prometheus_client import REGISTRY

from integration.factories import KEY, TRITON_36, make_artifact

SERVICE = "kreg.v1.KernelRegistryService"


def _handled(method: str, code: str) -> float:
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


def _timed(method: str) -> float:
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": method}
    return REGISTRY.get_sample_value("grpc_server_handling_seconds_count", labels) or 0.0


def test_writes_are_audited_under_the_callers_request_id_or_one_the_registry_returns(server) -> None:  # type: ignore[no-untyped-def]
    artifact, blobs = make_artifact(KEY)
    request = pb.PublishKernelRequest(artifact=cv.artifact_to_proto(artifact), blobs=[cv.blob_to_proto(b) for b in blobs])
    with grpc.insecure_channel(str(server.address)) as channel:
        stub = pb_grpc.KernelRegistryServiceStub(channel)
        # Without an id (or with one too long to take) the registry makes one and returns it.
        made = []
        for metadata in ((), ((logs.REQUEST_ID_HEADER, "x" * 65),)):
            _, call = stub.PublishKernel.with_call(request, metadata=metadata)
            made.append(dict(call.trailing_metadata())[logs.REQUEST_ID_HEADER])
        assert all(len(m) == 16 and int(m, 16) >= 0 for m in made) and made[0] != made[1]
        # A read that succeeds logs nothing, so it is given no id.
        _, call = stub.ListJobs.with_call(pb.ListJobsRequest())
        assert logs.REQUEST_ID_HEADER not in dict(call.trailing_metadata() or ())
    # kreg's client sends the id of the request it is serving: the audit line has it.
    token = logs.request_id.set("publish-0815")
    try:
        with Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36)) as client:
            client.publish(*make_artifact(KEY))
    finally:
        logs.request_id.reset(token)
    entries = [json.loads(line) for line in (server.config.data_dir / "audit.jsonl").read_text().splitlines()]
    assert [e["request_id"] for e in entries if e["method"] == "PublishKernel"] == [*made, "publish-0815"]


def test_every_call_is_counted_by_method_and_code_and_timed(server) -> None:  # type: ignore[no-untyped-def]
    before = (_handled("GetKernel", "OK"), _handled("GetJob", "NOT_FOUND"), _timed("GetKernel"))
    with Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36)) as client:
        for _ in range(3):
            client.get_kernel(KEY)
        try:
            client.get_job("no-such-job")
        except NotFound:
            pass
    after = (_handled("GetKernel", "OK"), _handled("GetJob", "NOT_FOUND"), _timed("GetKernel"))
    assert [b - a for a, b in zip(before, after)] == [3.0, 1.0, 3.0]
