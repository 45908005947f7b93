"""A million read requests at one registry: errors and latency under a mixed, concurrent load.

    python bench/load.py --out bench/results/load.json [--requests 1000000] [--processes 2] [--concurrency 32]

`kreg serve --workers 0` in its own process on a fresh store holding one TUNED artifact per
kernel of both profiles (bench/registry_load.py's synthetic ones); then `--processes` client
processes, each with `--concurrency` callers on their own channels, send the requests, drawn
round-robin from a mix over the read RPCs: GetKernel for each profile key, GetManifest for
each model, FetchBlob of a 96 KiB binary, ListKernels, DescribeKernel by artifact id. Every
call has a 10 s deadline; any status other than OK counts as an error.

Writes {requests, errors, errors_by_status, seconds, qps, p50_ms, p99_ms, p999_ms, max_ms,
by_rpc: {rpc: {requests, p50_ms, p99_ms}}, processes, concurrency, machine, python, grpcio,
commit, date}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

import registry_load as rl  # bench/ is on sys.path when this file runs as a script
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import Runtime
from kreg.profiles import PROFILES, profile
from kreg.v1 import registry_pb2 as pb
from kreg import convert as cv

BENCH = Path(__file__).resolve().parent


def request_mix(address: str) -> list[tuple[str, bool, bytes]]:
    """(method, streaming, request bytes) for every request kind of the mix."""
    runtime = cv.runtime_to_proto(Runtime(rl.TOOLCHAIN))
    mix: list[tuple[str, bool, bytes]] = []
    with Client(address, timeout_s=30, runtime=Runtime(rl.TOOLCHAIN)) as client:
        artifacts = []
        for model in PROFILES:
            for op in profile(model):
                artifact, blobs = rl.synthetic_artifact(KernelKey("nvidia", "sm_90", model, op), 96 << 10)
                artifacts.append(client.publish(artifact, blobs))
                key = cv.key_to_proto(artifact.key)
                mix.append(("GetKernel", False, pb.GetKernelRequest(key=key, runtime=runtime).SerializeToString()))
            operators = [cv.operator_to_proto(op) for op in profile(model)]
            manifest = pb.GetManifestRequest(platform="nvidia", arch="sm_90", model=model, runtime=runtime, operators=operators)
            mix.append(("GetManifest", False, manifest.SerializeToString()))
    binary = artifacts[0].kernels[0].binary
    assert binary is not None
    mix.append(("FetchBlob", True, pb.FetchBlobRequest(sha256=binary.sha256).SerializeToString()))
    mix.append(("ListKernels", False, pb.ListKernelsRequest(platform="nvidia", arch="sm_90", page_size=20).SerializeToString()))
    mix.append(("DescribeKernel", False, pb.DescribeKernelRequest(artifact_id=artifacts[1].artifact_id).SerializeToString()))
    return mix


async def _drive(address: str, mix: list[tuple[str, bool, bytes]], count: int, concurrency: int, offset: int) -> dict[str, Any]:
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 32 << 20)]) for _ in range(concurrency)]
    calls = [
        [(c.unary_stream if streaming else c.unary_unary)(rl.SERVICE + method) for method, streaming, _ in mix] for c in channels
    ]
    latencies: dict[str, array[float]] = {method: array("d") for method, _, _ in mix}
    errors: Counter[str] = Counter()
    next_index = 0

    async def caller(i: int) -> None:
        nonlocal next_index
        while next_index < count:
            n = next_index
            next_index += 1
            kind = (n + offset) % len(mix)
            method, streaming, request = mix[kind]
            started = time.perf_counter()
            try:
                if streaming:
                    async for _ in calls[i][kind](request, timeout=10):
                        pass
                else:
                    await calls[i][kind](request, timeout=10)
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] += 1
                continue
            latencies[method].append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return {"latencies": {m: v.tobytes() for m, v in latencies.items()}, "errors": dict(errors)}


def _process(args: tuple[str, list[tuple[str, bool, bytes]], int, int, int]) -> dict[str, Any]:
    return asyncio.run(_drive(*args))


def _quantiles_ms(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=1000, method="inclusive")
    return q[499] * 1e3, q[989] * 1e3, q[998] * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/load.json"))
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="callers per process, one channel each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kreg-load-") as tmp:
        address = f"127.0.0.1:{rl._free_port()}"
        server = subprocess.Popen(
            [sys.executable, "-m", "kreg.cli", "serve", "--workers", "0", "--data", f"{tmp}/data", "--listen", address],
            stderr=subprocess.DEVNULL,
        )
        try:
            rl._wait_ready(address, server)
            mix = request_mix(address)
            print(f"registry on {address}: {len(mix)} request kinds; {args.requests:,} requests", flush=True)
            share = [args.requests // args.processes + (i < args.requests % args.processes) for i in range(args.processes)]
            started = time.perf_counter()
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                results = pool.map(_process, [(address, mix, n, args.concurrency, i * 7) for i, n in enumerate(share)])
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)

    by_rpc: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
        for method, raw in result["latencies"].items():
            values = array("d")
            values.frombytes(raw)
            by_rpc.setdefault(method, []).extend(values)
    everything = [v for values in by_rpc.values() for v in values]
    p50, p99, p999 = _quantiles_ms(everything)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=BENCH, capture_output=True, text=True).stdout.strip()
    row = {
        "requests": len(everything) + sum(errors.values()),
        "errors": sum(errors.values()),
        "errors_by_status": dict(errors),
        "seconds": round(seconds, 1),
        "qps": round((len(everything) + sum(errors.values())) / seconds, 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "p999_ms": round(p999, 3),
        "max_ms": round(max(everything) * 1e3, 3),
        "by_rpc": {
            m: {"requests": len(v), "p50_ms": round(_quantiles_ms(v)[0], 3), "p99_ms": round(_quantiles_ms(v)[1], 3)}
            for m, v in sorted(by_rpc.items())
        },
        "processes": args.processes,
        "concurrency": args.concurrency,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "grpcio": importlib.metadata.version("grpcio"),
        "commit": commit,
        "date": datetime.date.today().isoformat(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "by_rpc"}), flush=True)
    for method, stats in row["by_rpc"].items():
        print(f"  {method:15} {stats['requests']:>9,} requests  p50 {stats['p50_ms']:7.2f} ms  p99 {stats['p99_ms']:7.2f} ms")
    return 0 if row["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
