"""Blob streaming, health, reflection, limits and the error table of a live server."""

from __future__ import annotations

import inspect

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import start_test_server
from integration.factories import KEY, make_artifact
from kreg import convert as cv
from kreg.client import Client
from kreg.errors import InvalidArgument, NotFound, ResourceExhausted
from kreg.model import Digest
from kreg.v1 import registry_pb2 as pb
from kreg.v1 import registry_pb2_grpc as pb_grpc
from registry.core import BLOB_CHUNK_BYTES
from registry.server import SERVICE_NAME


def test_fetch_blob_streams_one_mib_chunks_and_resumes_from_an_offset(server) -> None:
    artifact, blobs = make_artifact(binary_size=(5 << 20) // 2)  # 2.5 MiB
    binary = blobs[1]
    with Client(server.address, timeout_s=10) as client:
        client.publish(artifact, blobs)
        assert client.fetch_blob(binary.digest) == binary.data
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.KernelRegistryServiceStub(channel)
        chunks = list(stub.FetchBlob(pb.FetchBlobRequest(sha256=binary.digest.sha256)))
        assert [len(c.data) for c in chunks] == [BLOB_CHUNK_BYTES, BLOB_CHUNK_BYTES, len(binary.data) - 2 * BLOB_CHUNK_BYTES]
        assert chunks[0].digest.size_bytes == len(binary.data) and not chunks[1].HasField("digest")
        resumed = list(stub.FetchBlob(pb.FetchBlobRequest(sha256=binary.digest.sha256, offset=1_500_000)))
        assert resumed[0].offset == 1_500_000
        assert b"".join(c.data for c in resumed) == binary.data[1_500_000:]


def test_fetch_blob_errors(server) -> None:
    artifact, blobs = make_artifact()
    with Client(server.address, timeout_s=5) as client:
        client.publish(artifact, blobs)
        with pytest.raises(NotFound):
            client.fetch_blob(Digest("0" * 64, 10))
        with pytest.raises(InvalidArgument):
            client.fetch_blob(Digest("not-hex", 10))
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        stub = pb_grpc.KernelRegistryServiceStub(channel)
        list(stub.FetchBlob(pb.FetchBlobRequest(sha256=blobs[0].digest.sha256, offset=10**9)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_keys_are_invalid_argument_with_the_reason(server) -> None:
    bad = pb.KernelKey(platform="nvidia", arch="hopper", model="m", operator=pb.OperatorSpec(name="op", version=1))
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.KernelRegistryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetKernel(pb.GetKernelRequest(key=bad))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hopper" in info.value.details() and "exact generation" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.GetKernel(pb.GetKernelRequest())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bytes_that_are_not_a_request_are_invalid_argument(server) -> None:
    """GetKernel and GetManifest parse their own request bytes (to answer kept replies by
    them); what does not parse is the caller's error, named, not INTERNAL."""
    with grpc.insecure_channel(server.address) as channel:
        for method in ("GetKernel", "GetManifest"):
            call = channel.unary_unary(f"/{SERVICE_NAME}/{method}")
            for _ in range(2):  # not kept either
                with pytest.raises(grpc.RpcError) as info:
                    call(b"\xff\xff\xff", timeout=5)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                assert f"not a serialised {method}Request" in info.value.details()


def test_kept_replies_follow_the_store(server) -> None:
    """The same request bytes answer from the kept reply only until the next write."""
    artifact, blobs = make_artifact()
    request = pb.GetKernelRequest(key=cv.key_to_proto(artifact.key))
    with grpc.insecure_channel(server.address) as channel, Client(server.address, timeout_s=10) as client:
        stub = pb_grpc.KernelRegistryServiceStub(channel)
        before = [stub.GetKernel(request).resolution for _ in range(3)]
        published = client.publish(artifact, blobs)
        after = [stub.GetKernel(request).resolution for _ in range(2)]
        client.retract(published.artifact_id, "bad numbers")
        retracted = stub.GetKernel(request).resolution
    # the first miss queued a job (a write): that answer is not kept, the next one is
    assert before[0].reason.endswith("queued") and before[1] == before[2] and not before[1].reason.endswith("queued")
    assert before[1].job_id == before[0].job_id and not before[1].artifact.artifact_id
    assert after[0] == after[1] and after[0].artifact.artifact_id == published.artifact_id
    assert not retracted.artifact.artifact_id and "bad numbers" in retracted.reason


def test_oversized_publish_is_resource_exhausted(server) -> None:
    artifact, blobs = make_artifact(binary_size=9 << 20)  # over the test server's 8 MiB receive limit
    with Client(server.address, timeout_s=10) as client, pytest.raises(ResourceExhausted):
        client.publish(artifact, blobs)


def test_health_is_serving_and_reflection_lists_the_service(server) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_health_reports_not_serving_while_draining(tmp_path) -> None:
    srv = start_test_server(tmp_path / "data")
    channel = grpc.insecure_channel(srv.address)
    health = health_pb2_grpc.HealthStub(channel)
    updates = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
    srv.stop(grace_s=1.0)
    statuses = []
    try:
        for update in updates:
            statuses.append(update.status)
    except grpc.RpcError:
        pass  # the stream ends when the server is gone
    channel.close()
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses


def test_every_rpc_has_a_servicer_method_and_a_client_call() -> None:
    """Contract: a new RPC without a server implementation or client wrapper fails here."""
    from registry.service import KernelRegistryServicer

    rpcs = [m.name for m in pb.DESCRIPTOR.services_by_name["KernelRegistryService"].methods]
    assert rpcs  # the descriptor is read, not a hard-coded list
    base = pb_grpc.KernelRegistryServiceServicer
    for rpc in rpcs:
        assert getattr(KernelRegistryServicer, rpc) is not getattr(base, rpc), f"{rpc} not implemented by the servicer"
    source = inspect.getsource(Client)
    missing = [rpc for rpc in rpcs if f"self._stub.{rpc}" not in source]
    assert not missing, f"client has no call for {missing}"


def test_no_rpc_answers_unknown_for_empty_requests(server) -> None:
    """Every RPC, given an empty request, answers a deliberate status (never UNKNOWN or INTERNAL)."""
    service = pb.DESCRIPTOR.services_by_name["KernelRegistryService"]
    with grpc.insecure_channel(server.address) as channel:
        for method in service.methods:
            request_class = getattr(pb, method.input_type.name)
            path = f"/{service.full_name}/{method.name}"
            if method.server_streaming:
                call = channel.unary_stream(path, request_serializer=request_class.SerializeToString, response_deserializer=bytes)
                try:
                    list(call(request_class(), timeout=5))
                    continue
                except grpc.RpcError as e:
                    code = e.code()
            else:
                call = channel.unary_unary(path, request_serializer=request_class.SerializeToString, response_deserializer=bytes)
                try:
                    call(request_class(), timeout=5)
                    continue
                except grpc.RpcError as e:
                    code = e.code()
            assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), f"{method.name} answered {code}"


def test_lists_and_texts_in_write_requests_are_bounded(server) -> None:
    from registry.core import RegistryLimits

    limits = RegistryLimits()
    keys = [KEY.with_model(f"m{i}") for i in range(limits.max_request_keys + 1)]
    artifact, blobs = make_artifact()
    with Client(server.address, timeout_s=10) as client:
        with pytest.raises(InvalidArgument, match=rf"keys: {len(keys)} > limit {limits.max_request_keys}"):
            client.request_generation(keys)
        published = client.publish(artifact, blobs)
        with pytest.raises(InvalidArgument, match="reason \\(characters\\)"):
            client.retract(published.artifact_id, "x" * (limits.max_reason_chars + 1))
        assert client.describe_kernel(published.artifact_id)[0].state.name == "ACTIVE"  # nothing was retracted
