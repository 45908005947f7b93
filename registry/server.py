"""Wiring: gRPC server, health, reflection, store, graceful drain. No request logic here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kreg.v1 import registry_pb2, registry_pb2_grpc
from registry import metrics
from registry.core import Registry, RegistryLimits
from registry.audit import AuditLog
from registry.auth import TokenTable
from registry.handlers import add_service
from registry.service import KernelRegistryServicer
from registry.store import Store

log = logging.getLogger(__name__)

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["KernelRegistryService"].full_name


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:7600"
    # Publishes carry binaries in the request (one transaction for blobs + record), so the
    # receive limit bounds the largest artifact; replies are chunked (FetchBlob) or paged.
    max_receive_bytes: int = 64 << 20
    max_send_bytes: int = 16 << 20
    grace_s: float = 10.0
    map_size_bytes: int = 256 << 20
    limits: RegistryLimits = field(default_factory=RegistryLimits)
    # Token file (registry.auth); None: every call is open (a registry on loopback or in a
    # private network of trusted hosts).
    auth_file: Path | None = None
    tls: ServerTls | None = None

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen: want HOST:PORT (port 0 picks a free one), got {self.listen!r}")
        if self.max_receive_bytes < 1 << 20:
            raise ValueError("max_receive_bytes: at least 1 MiB")
        if self.grace_s < 0:
            raise ValueError("grace_s: must not be negative")


@dataclass(frozen=True)
class ServerTls:
    """PEM files: the server's certificate chain and key; with `client_ca`, mutual TLS (a
    client must present a certificate that CA signed)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
            client_ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as e:
            raise ValueError(f"tls: cannot read {e.filename}: {e.strerror}") from None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    registry: Registry
    health: health.aio.HealthServicer
    store: Store
    reaper: asyncio.Task[None]
    audit: AuditLog

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: report NOT_SERVING, let calls in flight finish within the grace, close the store."""
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reaper
        self.registry.drain()
        await self.server.stop(grace_s)
        metrics.COLLECTOR.detach(self.registry)
        self.registry.close()
        self.store.close()
        self.audit.close()


async def start_server(config: ServerConfig) -> RunningServer:
    """Start serving; returns once the store is open and health says SERVING."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_receive_bytes),
            ("grpc.max_send_message_length", config.max_send_bytes),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    servicer = KernelRegistryServicer()
    auth = TokenTable.load(config.auth_file) if config.auth_file is not None else None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(config.data_dir)
    add_service(registry_pb2_grpc.add_KernelRegistryServiceServicer_to_server, servicer, server, auth, audit)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if config.tls is not None:
        port = server.add_secure_port(config.listen, config.tls.credentials())
    else:
        port = server.add_insecure_port(config.listen)
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}")
    await server.start()

    store = await asyncio.to_thread(Store.open, config.data_dir, map_size=config.map_size_bytes)
    registry = Registry(store, config.limits)
    servicer.attach(registry)
    metrics.COLLECTOR.attach(registry)
    reaper = asyncio.create_task(registry.reap_forever(), name="lease-reaper")
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "registry serving on port %d (%s, %s), data in %s", port,
        "mutual TLS" if config.tls and config.tls.client_ca else "TLS" if config.tls else "plaintext",
        f"auth from {config.auth_file}" if auth else "no auth", config.data_dir,
    )
    return RunningServer(server, port, registry, health_servicer, store, reaper, audit)


async def serve(config: ServerConfig, on_ready: Callable[[RunningServer], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain gracefully."""
    running = await start_server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(running)
    await stop.wait()
    log.info("draining (grace %.1fs)", config.grace_s)
    await running.stop(config.grace_s)
