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

from kreg import logs

log = logging.getLogger("kreg.serve")


def start_workers(
    count: int, registry: str, *, quiet: bool = False, env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "kreg.cli", "--registry", registry, "worker"] + (["--quiet"] if quiet else [])
    return [subprocess.Popen(command, env=env) for _ in range(count)]


def worker_env(args: argparse.Namespace) -> dict[str, str] | None:
    """What embedded workers need to reach this server: a worker token from the auth file
    and the server's certificate to verify it by, unless the environment already gives
    them; None when they cannot (mutual TLS needs a client certificate of their own)."""
    import os
    from pathlib import Path

    from registry.auth import Role, first_token

    env = dict(os.environ)
    if args.auth_file and not (env.get("KREG_TOKEN") or env.get("KREG_TOKEN_FILE")):
        token = first_token(Path(args.auth_file), Role.WORKER)
        if token is None:
            log.warning("the auth file lists no worker or admin token: embedded workers could not publish")
            return None
        env["KREG_TOKEN"] = token
    if args.tls_cert:
        env.setdefault("KREG_TLS_CA", args.tls_cert)
        if args.tls_client_ca and not env.get("KREG_TLS_CERT"):
            log.warning("mutual TLS: embedded workers need a client certificate (--tls-client-cert/--tls-client-key)")
            return None
    return env


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
    logs.configure(args.KREG_LOG_FORMAT)
    from registry.server import ServerTls

    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
    tls = ServerTls(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_client_ca) if args.tls_client_ca else None) if args.tls_cert else None
    config = ServerConfig(
        data_dir=Path(args.data), listen=args.listen, grace_s=args.grace,
        auth_file=Path(args.auth_file) if args.auth_file else None, tls=tls,
    )
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
        env = worker_env(args) if args.workers else None
        if args.workers and env is None:
            log.warning("starting no embedded worker")
            return
        workers.extend(start_workers(args.workers, address, env=env))
        if workers:
            log.info("started %d embedded worker(s) for %s", len(workers), address)

    try:
        asyncio.run(serve(config, on_ready))
    finally:
        stop_workers(workers, args.grace)
    return 0
