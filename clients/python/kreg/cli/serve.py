"""`kreg serve`: the registry server, and by default one embedded local worker in a child
process that talks to it over loopback like any other worker (DESIGN.md §2)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("kreg.serve")


def start_workers(count: int, registry: str, *, quiet: bool = False) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "kreg.cli", "--registry", registry, "worker"] + (["--quiet"] if quiet else [])
    return [subprocess.Popen(command) for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    for proc in workers:
        proc.terminate()
    for proc in workers:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> int:
    from registry.server import RunningServer, ServerConfig, serve

    if args.workers < 0:
        raise ValueError("--workers: must not be negative")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=Path(args.data), listen=args.listen, grace_s=args.grace)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
        log.info("metrics on :%d/metrics", args.metrics_port)

    workers: list[subprocess.Popen[bytes]] = []

    if args.workers and not all(importlib.util.find_spec(m) for m in ("torch", "triton")):
        log.warning("torch/triton are not installed (pip install 'kernel-registry[generator]'): starting no embedded worker")
        args.workers = 0

    def on_ready(running: RunningServer) -> None:
        host = args.listen.rpartition(":")[0]
        # Workers dial the registry on loopback when it listens on every interface.
        address = f"{'127.0.0.1' if host in ('0.0.0.0', '[::]') else host}:{running.port}"
        workers.extend(start_workers(args.workers, address))
        if workers:
            log.info("started %d embedded worker(s) for %s", len(workers), address)

    try:
        asyncio.run(serve(config, on_ready))
    finally:
        stop_workers(workers, args.grace)
    return 0
