"""Registry read throughput on loopback, against the floor a bare grpc.aio server sets for the
same bytes, both started and measured in this run.

    python bench/registry_load.py --out bench/results/registry-load.json [--seconds 5]

The registry (`kreg serve --workers 0`, its own process, a fresh LMDB store) is filled with
one TUNED artifact per kernel of both model profiles on nvidia/sm_90, one of them with a
16 MiB binary. The requests a serving host sends (GetKernel of one key, GetManifest of the
dlrm-v2 profile, FetchBlob of the 16 MiB binary) are captured with the registry's replies;
the bare server (bench/bare_grpc_server.py, its own process) answers the same method paths
with those reply bytes and does nothing else. Load: 1, 8 and 64 concurrent clients, one
channel each, in this process, sending the captured request bytes for `--seconds` per
server and level, split into `--rounds` that alternate between the registry and the floor. Both servers first take `--warmup-s` of unmeasured load per RPC.

Writes a JSON list of rows {rpc, clients, qps, p50_ms, p99_ms, floor_qps, floor_p99_ms,
ratio} (ratio = qps / floor_qps) and one {rpc: FetchBlob, blob_mb_s, floor_blob_mb_s, ratio},
each with the run's commit, machine, versions and date. Targets (issue 5): ratio >= 0.8 at every level, p99 <= 1.25 x the
floor's, blob ratio >= 0.8. On a 2-core host the client process and each server get about a
core each: a floor that the client cannot saturate reads low, so the ratios lean generous.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from kreg import convert as cv
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    BlobData,
    Digest,
    EvidenceTier,
    KernelBinary,
    LaunchAbi,
    LaunchParam,
    Measurements,
    Provenance,
    Runtime,
    ShapeMeasurement,
    Target,
    Toolchain,
)
from kreg.profiles import PROFILES, profile, tuning_shapes
from kreg.v1 import registry_pb2 as pb

BENCH = Path(__file__).resolve().parent
SERVICE = "/kreg.v1.KernelRegistryService/"
TOOLCHAIN = Toolchain("3.6.0", "cuda")
CLIENTS = (1, 8, 64)
BLOB_BYTES = 16 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(address: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            proc.kill()
            raise RuntimeError(f"no server on {address} after {timeout_s:.0f}s") from None


def _blob(data: bytes) -> BlobData:
    return BlobData(Digest(hashlib.sha256(data).hexdigest(), len(data)), data)


def synthetic_artifact(key: KernelKey, binary_bytes: int) -> tuple[Artifact, list[BlobData]]:
    """A TUNED artifact shaped like the generator's: source, binary and metadata blobs, a
    ten-parameter ABI, the key's profile shapes measured."""
    source = _blob(b"import triton\n# " + key.key_id.encode() + b"\n" + os.urandom(2048).hex().encode())
    binary, metadata = _blob(os.urandom(binary_bytes)), _blob(json.dumps({"name": key.operator.name, "pad": "x" * 1500}).encode())
    params = tuple(LaunchParam(f"arg{i}", "*bf16" if i < 4 else "i32") for i in range(10))
    abi = LaunchAbi(params, (("BLOCK_L", "64"), ("BLOCK_D", "128")), (), 4, 3, 16384)
    kernel = KernelBinary("main", f"{key.operator.name}_kernel", source.digest, abi, binary.digest, "cubin", metadata.digest)
    shapes = tuple(
        ShapeMeasurement(shape, 0.05 * (i + 1), 0.049, 0.051, 0.2, 0.1, 0.8)
        for i, shape in enumerate(tuning_shapes(key.model, key.operator))
    )
    artifact = Artifact(
        key=key,
        kernels=(kernel,),
        target=Target("cuda", key.arch, 32),
        toolchain=TOOLCHAIN,
        tier=EvidenceTier.TUNED,
        measurements=Measurements(shapes=shapes, max_relative_error=1e-3, speedup_vs_eager=4.0, speedup_vs_compile=2.0),
        provenance=Provenance(generator_version="bench", search_strategy="synthetic", candidates_tried=12, worker_id="bench"),
    )
    return artifact, [source, binary, metadata]


def populate_and_capture(address: str) -> tuple[dict[str, bytes], dict[str, bytes | list[bytes]], float]:
    """Publish the artifacts; return (request bytes, the registry's reply bytes) by method,
    and the MB/s of the blob's first fetch."""
    runtime = Runtime(TOOLCHAIN)
    big: Digest | None = None
    with Client(address, timeout_s=60, runtime=runtime) as client:
        for model in PROFILES:
            for i, op in enumerate(profile(model)):
                size = BLOB_BYTES if (model, i) == ("dlrm-v2", 0) else 96 << 10
                artifact, blobs = synthetic_artifact(KernelKey("nvidia", "sm_90", model, op), size)
                client.publish(artifact, blobs)
                if size == BLOB_BYTES:
                    big = blobs[1].digest
    assert big is not None
    key = KernelKey("nvidia", "sm_90", "dlrm-v2", profile("dlrm-v2")[3])
    requests = {
        "GetKernel": pb.GetKernelRequest(key=cv.key_to_proto(key), runtime=cv.runtime_to_proto(runtime)).SerializeToString(),
        "GetManifest": pb.GetManifestRequest(
            platform="nvidia",
            arch="sm_90",
            model="dlrm-v2",
            runtime=cv.runtime_to_proto(runtime),
            operators=[cv.operator_to_proto(op) for op in profile("dlrm-v2")],
        ).SerializeToString(),
        "FetchBlob": pb.FetchBlobRequest(sha256=big.sha256).SerializeToString(),
    }
    replies: dict[str, bytes | list[bytes]] = {}
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 32 << 20)]) as channel:
        for method in ("GetKernel", "GetManifest"):
            replies[SERVICE + method] = channel.unary_unary(SERVICE + method)(requests[method], timeout=30)
        started = time.perf_counter()
        replies[SERVICE + "FetchBlob"] = list(channel.unary_stream(SERVICE + "FetchBlob")(requests["FetchBlob"], timeout=60))
        # The blob's first fetch: read from LMDB, verified, serialised (later ones are kept).
        first_fetch_mb_s = BLOB_BYTES / (time.perf_counter() - started) / 1e6
    resolutions = pb.GetManifestResponse.FromString(replies[SERVICE + "GetManifest"]).resolutions  # type: ignore[arg-type]
    if not all(r.artifact.artifact_id for r in resolutions):
        raise RuntimeError("the manifest did not resolve every kernel to the published artifacts")
    return requests, replies, first_fetch_mb_s


async def load(address: str, method: str, request: bytes, clients: int, seconds: float) -> tuple[int, float, list[float]]:
    """(calls, elapsed s, latencies s) of `clients` concurrent callers, one channel each."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]
    calls = [c.unary_unary(SERVICE + method) for c in channels]
    latencies: list[float] = []

    async def caller(call: Any, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            await call(request, timeout=30)
            if record:
                latencies.append(time.perf_counter() - started)

    try:
        warm_until = time.perf_counter() + min(0.5, seconds / 4)
        await asyncio.gather(*(caller(c, warm_until, False) for c in calls))
        started = time.perf_counter()
        await asyncio.gather(*(caller(c, started + seconds, True) for c in calls))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return len(latencies), elapsed, latencies


async def interleaved(
    registry: str, floor: str, method: str, request: bytes, clients: int, seconds: float, rounds: int
) -> dict[str, tuple[float, float, float]]:
    """{server: (calls/s, p50 ms, p99 ms)}, the two servers measured in alternating rounds so
    that the machine's drift (a shared 2-core VM here) lands on both alike."""
    totals: dict[str, tuple[int, float, list[float]]] = {registry: (0, 0.0, []), floor: (0, 0.0, [])}
    for _ in range(rounds):
        for address in (registry, floor):
            calls, elapsed, latencies = await load(address, method, request, clients, seconds / rounds)
            done, spent, seen = totals[address]
            totals[address] = (done + calls, spent + elapsed, seen + latencies)
    out = {}
    for address, (calls, elapsed, latencies) in totals.items():
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        out[address] = (calls / elapsed, q[49] * 1e3, q[98] * 1e3)
    return out


async def blob_rate(address: str, request: bytes, repeats: int) -> float:
    """MB/s (10^6 bytes) of one client streaming the 16 MiB blob `repeats` times (the first
    fetch of a run fills the registry's kept replies; the warm rate is what a fleet sees)."""
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 32 << 20)]) as channel:
        stream = channel.unary_stream(SERVICE + "FetchBlob")
        received = 0
        started = time.perf_counter()
        for _ in range(repeats):
            async for message in stream(request, timeout=60):
                received += len(message)
        return received / (time.perf_counter() - started) / 1e6


async def measure(
    registry: str, floor: str, requests: dict[str, bytes], seconds: float, rounds: int, repeats: int, first_fetch: float,
    warmup_s: float,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # Both servers warmed alike before the first point: the registry has just taken the
    # publishes and a 16 MiB first fetch, and without this the first point measured it.
    for method in ("GetKernel", "GetManifest"):
        for address in (registry, floor):
            await load(address, method, requests[method], 8, warmup_s / 2)
    for method in ("GetKernel", "GetManifest"):
        for clients in CLIENTS:
            measured = await interleaved(registry, floor, method, requests[method], clients, seconds, rounds)
            (qps, p50, p99), (floor_qps, _, floor_p99) = measured[registry], measured[floor]
            row = {
                "rpc": method,
                "clients": clients,
                "qps": round(qps, 1),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "floor_qps": round(floor_qps, 1),
                "floor_p99_ms": round(floor_p99, 3),
                "ratio": round(qps / floor_qps, 3),
            }
            print(
                f"{method:12} {clients:3} clients: {qps:8.0f}/s p50 {p50:6.2f} ms p99 {p99:6.2f} ms | "
                f"floor {floor_qps:8.0f}/s p99 {floor_p99:6.2f} ms | ratio {row['ratio']:.2f}",
                flush=True,
            )
            rows.append(row)
    mine = bare = 0.0
    for _ in range(rounds):  # alternating, as above
        mine += await blob_rate(registry, requests["FetchBlob"], max(1, repeats // rounds)) / rounds
        bare += await blob_rate(floor, requests["FetchBlob"], max(1, repeats // rounds)) / rounds
    print(f"FetchBlob 16 MiB: {mine:.0f} MB/s | floor {bare:.0f} MB/s | ratio {mine / bare:.2f}", flush=True)
    print(f"  first fetch of the blob (not kept yet): {first_fetch:.0f} MB/s", flush=True)
    rows.append(
        {
            "rpc": "FetchBlob",
            "blob_mb_s": round(mine, 1),
            "floor_blob_mb_s": round(bare, 1),
            "ratio": round(mine / bare, 3),
            "first_fetch_mb_s": round(first_fetch, 1),
        }
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/registry-load.json"))
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per (rpc, clients, server)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds the seconds are split into")
    parser.add_argument("--blob-repeats", type=int, default=20)
    parser.add_argument("--warmup-s", type=float, default=2.0, help="unmeasured load per RPC and server before the first point")
    args = parser.parse_args()

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="kreg-load-") as tmp:
        try:
            registry = f"127.0.0.1:{_free_port()}"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "kreg.cli", "serve", "--workers", "0", "--data", f"{tmp}/data", "--listen", registry],
                    stderr=subprocess.DEVNULL,
                )
            )
            _wait_ready(registry, procs[-1])
            print(f"registry on {registry}; publishing {sum(len(k) for k in PROFILES.values())} artifacts", flush=True)
            requests, replies, first_fetch = populate_and_capture(registry)
            replies_path = Path(tmp) / "replies.pickle"
            replies_path.write_bytes(pickle.dumps(replies))
            floor = f"127.0.0.1:{_free_port()}"
            procs.append(subprocess.Popen([sys.executable, str(BENCH / "bare_grpc_server.py"), str(replies_path), floor.rpartition(":")[2]]))
            _wait_ready(floor, procs[-1])
            sizes = {m.rpartition("/")[2]: len(r) if isinstance(r, bytes) else sum(map(len, r)) for m, r in replies.items()}
            print(f"floor on {floor}; reply bytes {sizes}", flush=True)
            rows = asyncio.run(
                measure(registry, floor, requests, args.seconds, args.rounds, args.blob_repeats, first_fetch, args.warmup_s)
            )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=BENCH, capture_output=True, text=True).stdout.strip()
    meta = {
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "grpcio": importlib.metadata.version("grpcio"),
        "protobuf": importlib.metadata.version("protobuf"),
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "warmup_s": args.warmup_s,
        "reply_bytes": sizes,
        "date": datetime.date.today().isoformat(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([{**row, **meta} for row in rows], indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
