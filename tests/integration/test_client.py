"""kreg.Client behaviour against real servers: deadlines, read retries, the node cache,
the lockfile and an offline start, asyncio use."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import start_test_server
from registry.embedded import EmbeddedRegistry
from integration.factories import KEY, TRITON_36, make_artifact
from kreg.client import AsyncClient, Client, start_manifest
from kreg.errors import DeadlineExceeded, NotFound, Unavailable
from kreg.lockfile import Lockfile
from kreg.model import Digest, ResolutionKind, Runtime
from registry.server import ServerConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reads_retry_unavailable_until_the_server_comes_up(tmp_path: Path) -> None:
    port = _free_port()
    started: list[EmbeddedRegistry] = []
    starter = threading.Timer(
        0.5, lambda: started.append(EmbeddedRegistry(ServerConfig(data_dir=tmp_path / "d", listen=f"127.0.0.1:{port}")))
    )
    starter.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout_s=10, read_retries=20) as client:
            resolution = client.get_kernel(KEY, queue=False)
        assert resolution.kind is ResolutionKind.REFERENCE
    finally:
        starter.join()
        for srv in started:
            srv.stop()


def test_a_call_to_an_absent_registry_fails_within_its_deadline() -> None:
    port = _free_port()
    with Client(f"127.0.0.1:{port}", timeout_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises((Unavailable, DeadlineExceeded)):
            client.get_kernel(KEY)
        assert time.monotonic() - started < 3.0


def test_fetched_blobs_land_in_the_cache_and_are_served_from_it_when_the_registry_is_gone(tmp_path: Path) -> None:
    srv = start_test_server(tmp_path / "data")
    artifact, blobs = make_artifact(binary_size=3 << 20)
    with Client(srv.address, timeout_s=10, cache_dir=tmp_path / "cache") as client:
        client.publish(artifact, blobs)
        for b in blobs:
            assert client.fetch_blob(b.digest) == b.data
    srv.stop()
    with Client(srv.address, timeout_s=1, cache_dir=tmp_path / "cache") as offline:
        assert offline.fetch_blob(blobs[1].digest) == blobs[1].data


def test_fetch_blobs_returns_verified_bytes_at_once_and_caches_them_behind(server, tmp_path: Path) -> None:
    artifact, blobs = make_artifact(binary_size=3 << 20)
    with Client(server.address, timeout_s=10, cache_dir=tmp_path / "cache") as client:
        client.publish(artifact, blobs)
        assert client.cache is not None
        client.cache.put(blobs[0].digest, blobs[0].data)  # one already cached: read from there
        digests = [b.digest for b in blobs]
        got = client.fetch_blobs(digests + digests[:1], parallel=4)
        assert got == {b.digest: b.data for b in blobs}
        client.flush_cache()
        assert all(client.cache.get(b.digest) == b.data for b in blobs)
        absent = Digest("0" * 64, 10)
        with pytest.raises(NotFound):
            client.fetch_blobs([absent, *digests], parallel=4)


def test_an_interrupted_fetch_resumes_from_the_partial_file(server, tmp_path: Path) -> None:
    artifact, blobs = make_artifact(binary_size=3 << 20)
    binary = blobs[1]
    with Client(server.address, timeout_s=10, cache_dir=tmp_path / "cache") as client:
        client.publish(artifact, blobs)
        assert client.cache is not None
        # A previous process died after receiving the first 1.2 MB.
        partial = client.cache.partial_path(binary.digest)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(binary.data[:1_200_000])
        assert client.fetch_blob(binary.digest) == binary.data
        assert client.cache.get(binary.digest) == binary.data


def test_repeated_and_resumed_fetches_get_the_same_bytes_from_the_kept_replies(server, tmp_path: Path) -> None:
    artifact, blobs = make_artifact(binary_size=(5 << 20) + 123)
    binary = blobs[1]
    with Client(server.address, timeout_s=10) as client:
        client.publish(artifact, blobs)
        first, again = client.fetch_blob(binary.digest), client.fetch_blob(binary.digest)
    with Client(server.address, timeout_s=10, cache_dir=tmp_path / "cache") as resuming:
        assert resuming.cache is not None
        partial = resuming.cache.partial_path(binary.digest)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(binary.data[: (2 << 20) + 7])  # mid-chunk: the normal path serves the rest
        resumed = resuming.fetch_blob(binary.digest)
    assert first == again == resumed == binary.data


def test_pinned_manifest_gives_an_offline_start(tmp_path: Path) -> None:
    srv = start_test_server(tmp_path / "data")
    artifact, blobs = make_artifact()
    lock_path = tmp_path / "dlrm.lock.json"
    runtime = Runtime(TRITON_36)
    with Client(srv.address, timeout_s=5, runtime=runtime, cache_dir=tmp_path / "cache") as client:
        client.publish(artifact, blobs)
        pinned = client.pin_manifest("nvidia", "sm_90", "dlrm-v2", [KEY.operator], lock_path)
    assert pinned.resolutions[0].kind is ResolutionKind.BINARY
    srv.stop()

    with Client(srv.address, timeout_s=0.5, runtime=runtime, cache_dir=tmp_path / "cache") as client:
        started = time.monotonic()
        resolutions = start_manifest(client, "nvidia", "sm_90", "dlrm-v2", [KEY.operator], lockfile=lock_path)
        assert time.monotonic() - started < 2.0
        assert resolutions == list(Lockfile.load(lock_path).resolutions)
        for digest in Lockfile.load(lock_path).digests():
            assert client.fetch_blob(digest)  # every pinned blob is in the cache
    no_lock = start_manifest(None, "nvidia", "sm_90", "dlrm-v2", [KEY.operator])
    assert no_lock[0].kind is ResolutionKind.REFERENCE and "unreachable" in no_lock[0].reason


async def test_async_client_does_not_block_the_event_loop(server) -> None:
    client = AsyncClient(Client(server.address, timeout_s=5))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    resolutions = await asyncio.gather(*(client.get_kernel(KEY) for _ in range(20)))
    task.cancel()
    client.close()
    assert {r.job_id for r in resolutions} and len({r.job_id for r in resolutions}) == 1
    assert ticks > 0


def test_server_config_rejects_a_bad_listen_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        ServerConfig(data_dir=tmp_path, listen="localhost")
