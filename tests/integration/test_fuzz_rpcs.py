"""10,000 malformed and random requests at a live server: every answer is a deliberate status
(never UNKNOWN or INTERNAL), the server keeps serving, and the store is consistent after.

Requests are random bytes, or messages of the RPC's own type with every field drawn at random
(strings from a vocabulary of near-valid values as well as arbitrary text, integers across
their type's range, nested messages a few levels deep), sent 50 at a time so that calls that
wait (LeaseJob, WatchKernel) overlap; each call has a 0.3 s deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.factories import KEY, make_artifact
from kreg.client import Client
from kreg.credentials import Credentials
from kreg.v1 import registry_pb2 as pb
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig

SERVICE = pb.DESCRIPTOR.services_by_name["KernelRegistryService"]
BATCH, EXAMPLES = 50, 200
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
VOCAB = [
    "", "nvidia", "amd", "cpu", "sm_90", "sm_80", "gfx942", "x86_64", "dlrm-v2", "*", "jagged_sum", "bf16",
    "fp32", "D", "128", "3.6.0", "cuda", "hip", str(KEY), KEY.key_id, "0" * 64, "f" * 63, "../../etc/passwd",
    "\x00", "é" * 9, "x" * 3000, "nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}", "jagged_sum@1{D=}", "RETRY",
]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _fields(field.message_type, depth + 1) if depth < 3 else st.just({})
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(VOCAB), st.text(max_size=40))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 12)  # open enums: unknown numbers arrive as they are
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    low, high = _INT_RANGES[field.type]
    return st.one_of(st.integers(low, high), st.integers(-2, 5).filter(lambda v: low <= v <= high))


def _fields(message: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in message.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            optional[field.name] = st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=4)
        elif field.is_repeated:
            optional[field.name] = st.lists(_scalar(field, depth), max_size=4)
        else:
            optional[field.name] = _scalar(field, depth)
    return st.fixed_dictionaries({}, optional=optional)


def _encoded(method: Any, fields: dict[str, Any]) -> bytes:
    cls = getattr(pb, method.input_type.name)
    try:
        return cls(**fields).SerializeToString()
    except (ValueError, TypeError):  # two members of a oneof, say: send what cannot be built as bytes
        return repr(sorted(fields)).encode()


def _request() -> st.SearchStrategy[tuple[Any, bytes]]:
    method = st.sampled_from(list(SERVICE.methods))
    structured = method.flatmap(lambda m: _fields(m.input_type).map(lambda f: (m, _encoded(m, f))))
    raw = st.tuples(method, st.binary(max_size=512))
    return st.one_of(structured, structured, raw)


async def _send(channel: grpc.aio.Channel, method: Any, request: bytes) -> grpc.StatusCode:
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.server_streaming:
            async for _ in channel.unary_stream(path)(request, timeout=0.3):
                pass
        else:
            await channel.unary_unary(path)(request, timeout=0.3)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as e:
        return e.code()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("fuzz")
    with EmbeddedRegistry(ServerConfig(data_dir=data / "registry", listen="127.0.0.1:0", max_receive_bytes=8 << 20)) as server:
        artifact, blobs = make_artifact()
        with Client(server.address, timeout_s=10, credentials=Credentials()) as client:
            client.publish(artifact, blobs)
            client.get_kernel(KEY.with_model("queued-by-a-miss"))
        yield server


def test_random_requests_get_deliberate_answers_and_leave_the_store_consistent(seeded: EmbeddedRegistry) -> None:
    seen: Counter[grpc.StatusCode] = Counter()
    bad: list[str] = []

    async def batch(requests: list[tuple[Any, bytes]]) -> None:
        async with grpc.aio.insecure_channel(seeded.address) as channel:
            codes = await asyncio.gather(*(_send(channel, m, r) for m, r in requests))
        for (method, request), code in zip(requests, codes):
            seen[code] += 1
            if code in FORBIDDEN:
                bad.append(f"{method.name} answered {code.name} to {hashlib.sha256(request).hexdigest()[:12]}: {request[:80]!r}")

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_request(), min_size=BATCH, max_size=BATCH))
    def run(requests: list[tuple[Any, bytes]]) -> None:
        asyncio.run(batch(requests))

    run()
    assert sum(seen.values()) >= 10_000
    assert not bad, bad[:10]
    assert seen[grpc.StatusCode.INVALID_ARGUMENT] > 0 and seen[grpc.StatusCode.OK] > 0, seen
    # Still serving, and nothing the fuzz did left the store inconsistent.
    with Client(seeded.address, timeout_s=10, credentials=Credentials()) as client:
        assert client.get_kernel(KEY).artifact is not None
    assert seeded.running.store.check() == []
