"""A serving host when the registry is absent, hangs, or answers UNAVAILABLE: with a lockfile
and node cache it starts from them; without, every op runs its reference. What ends each
wait is the client's own deadline or the refusal (a hang shows as DeadlineExceeded), never
the test's timeout."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch

import kreg.ops
import kreg.ops.provider  # noqa: F401 - patched below
from conftest import start_test_server
from integration.factories import KEY, TRITON_36, make_artifact
from kreg.client import Client, start_manifest
from kreg.credentials import Credentials
from kreg.errors import DeadlineExceeded, KregError, Unavailable
from kreg.lockfile import Lockfile
from kreg.model import ResolutionKind, Runtime
from kreg.ops import reference as ref

DEADLINE_S = 0.5


def _absent() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"127.0.0.1:{port}"  # bound then closed: nothing listens


def _hanging() -> Iterator[str]:
    """Accepts connections and never says a word (a wedged process, a black-holing proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


class _Unavailable(grpc.GenericRpcHandler):
    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded, try later")

        return grpc.unary_unary_rpc_method_handler(refuse)


def _unavailable() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_Unavailable(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


# Each mode, and the error that must end a call to it: a hang is cut by the deadline.
MODES: dict[str, tuple[Callable[[], Iterator[str]], type[KregError]]] = {
    "absent": (_absent, Unavailable),
    "hangs": (_hanging, DeadlineExceeded),
    "unavailable": (_unavailable, Unavailable),
}


@pytest.fixture(params=sorted(MODES))
def broken(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[KregError]]]:
    serve, error = MODES[request.param]
    for address in serve():
        yield address, error


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lockfile and a node cache pinned from a registry that then went away."""
    tmp = tmp_path_factory.mktemp("pinned")
    srv = start_test_server(tmp / "data")
    artifact, blobs = make_artifact()
    lock, cache = tmp / "dlrm.lock.json", tmp / "cache"
    with Client(srv.address, timeout_s=5, runtime=Runtime(TRITON_36), cache_dir=cache, credentials=Credentials()) as client:
        client.publish(artifact, blobs)
        client.pin_manifest("nvidia", "sm_90", "dlrm-v2", [KEY.operator], lock)
    srv.stop()
    return lock, cache


def _client(address: str, cache: Path | None = None) -> Client:
    return Client(address, timeout_s=DEADLINE_S, runtime=Runtime(TRITON_36), cache_dir=cache, credentials=Credentials())


def test_with_a_lockfile_and_cache_the_host_starts_from_them(broken: tuple[str, type[KregError]], pinned: tuple[Path, Path]) -> None:
    (address, error), (lock, cache) = broken, pinned
    with _client(address, cache) as client:
        with pytest.raises(error):
            client.get_manifest("nvidia", "sm_90", "dlrm-v2", [KEY.operator])
        resolutions = start_manifest(client, "nvidia", "sm_90", "dlrm-v2", [KEY.operator], lockfile=lock)
        blobs = [client.fetch_blob(d) for d in Lockfile.load(lock).digests()]  # the node cache answers
    assert resolutions == list(Lockfile.load(lock).resolutions)
    assert resolutions[0].kind is ResolutionKind.BINARY and all(blobs)


def test_without_a_lockfile_every_op_runs_its_reference(broken: tuple[str, type[KregError]], monkeypatch: pytest.MonkeyPatch) -> None:
    address, error = broken
    # Resolve for CPU tensors. (The module by sys.modules: kreg.ops.provider is also a function.)
    monkeypatch.setattr(sys.modules["kreg.ops.provider"], "interpreting", lambda: True)
    values, offsets = torch.randn(7, 16), torch.tensor([0, 3, 3, 7])
    with _client(address) as client:
        kreg.ops.configure(client, model="dlrm-v2", platform="nvidia", arch="sm_90")
        try:
            out = kreg.ops.jagged_sum(values, offsets)
            decision = kreg.ops.last_decision("jagged_sum")
        finally:
            kreg.ops.reset()
    assert torch.equal(out, ref.jagged_sum(values, offsets))
    assert decision is not None and decision.path == "reference"
    assert decision.reason.startswith(f"registry unreachable ({error.__name__}")
