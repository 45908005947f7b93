"""Tokens and roles, TLS and mutual TLS, against a live server; certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from integration.factories import KEY, make_artifact
from kreg.cli import main
from kreg.client import Client
from kreg.credentials import Credentials
from kreg.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from kreg.model import WorkerInfo
from kreg.v1 import registry_pb2 as pb
from registry.auth import METHOD_ROLES, Role, TokenTable
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig, ServerTls

TOKENS = {"reader": "r" * 24, "worker": "w" * 24, "admin": "a" * 24}


def auth_file(tmp_path: Path, *, readers: bool) -> Path:
    path = tmp_path / "tokens"
    lines = [f"{role} {token} {role}-1" for role, token in TOKENS.items() if readers or role != "reader"]
    path.write_text("# role token name\n" + "\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def client(server: EmbeddedRegistry, role: str | None = None, **tls: Path | str | None) -> Client:
    token = TOKENS[role] if role else None
    return Client(server.address, timeout_s=3, read_retries=0, credentials=Credentials(token=token, **tls))  # type: ignore[arg-type]


def serve(tmp_path: Path, **config: object) -> EmbeddedRegistry:
    return EmbeddedRegistry(ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", **config))  # type: ignore[arg-type]


# ------------------------------------------------------------------ tokens and roles


def test_every_rpc_has_a_role() -> None:
    service = pb.DESCRIPTOR.services_by_name["KernelRegistryService"]
    assert sorted(METHOD_ROLES) == sorted(m.name for m in service.methods)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no tokens"),
        ("owner " + "x" * 20, "role 'owner' is not one of"),
        ("admin short", "at least 16 characters"),
        (f"admin {'x' * 20}\nworker {'x' * 20}", ":2: this token is listed twice"),
        ("admin", r"tokens:1: want 'ROLE TOKEN \[NAME\]'"),
    ],
)
def test_a_bad_token_file_names_its_line(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        TokenTable.parse(text.splitlines(), "tokens")


def test_roles_guard_writes_and_reads_stay_open_without_reader_tokens(tmp_path: Path) -> None:
    artifact, blobs = make_artifact()
    with serve(tmp_path, auth_file=auth_file(tmp_path, readers=False)) as server:
        with client(server) as anonymous:
            anonymous.get_kernel(KEY)  # a read, open
            with pytest.raises(Unauthenticated, match="needs a token"):
                anonymous.publish(artifact, blobs)
        with client(server, "worker") as worker:
            published = worker.publish(artifact, blobs)
            with pytest.raises(PermissionDenied, match="RetractKernel needs the admin role; worker-1 is a worker"):
                worker.retract(published.artifact_id, "bad")
        with client(server, "admin") as admin:
            assert admin.retract(published.artifact_id, "bad").retract_reason == "bad"


def test_reader_tokens_close_the_reads(tmp_path: Path) -> None:
    artifact, blobs = make_artifact()
    with serve(tmp_path, auth_file=auth_file(tmp_path, readers=True)) as server:
        with client(server) as anonymous, pytest.raises(Unauthenticated):
            anonymous.get_kernel(KEY)
        with Client(server.address, timeout_s=3, credentials=Credentials(token="z" * 24)) as stranger:
            with pytest.raises(Unauthenticated, match="not known"):
                stranger.get_kernel(KEY)
        with client(server, "worker") as worker:
            worker.publish(artifact, blobs)
        with client(server, "reader") as reader:
            assert reader.get_kernel(KEY).artifact is not None
            assert reader.fetch_blob(blobs[1].digest) == blobs[1].data  # a stream is guarded too
            with pytest.raises(PermissionDenied):
                reader.lease_job(WorkerInfo("w", ()), wait_s=0, lease_s=10)
        # Health and reflection are open: load balancers and grpcurl carry no token.
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_cli_presents_a_token_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("KREG_TOKEN", "KREG_TOKEN_FILE"):
        monkeypatch.setenv(env, "")  # unset, and restored after main() sets it from the flag
    token_file = tmp_path / "reader-token"
    token_file.write_text(TOKENS["reader"] + "\n")
    with serve(tmp_path, auth_file=auth_file(tmp_path, readers=True)) as server:
        denied = main(["--registry", server.address, "--timeout", "3", "ls"])
        allowed = main(["--registry", server.address, "--timeout", "3", "--token-file", str(token_file), "ls"])
    assert (denied, allowed) == (6, 0)
    assert "Unauthenticated" in capsys.readouterr().err


# ------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key = _key(), _key()
    ca, other = _cert("kreg test CA", ca_key, None), _cert("someone else's CA", other_key, None)
    server_key, client_key, other_client_key = _key(), _key(), _key()
    return Pki(
        ca=_write(d / "ca.pem", ca),
        server_cert=_write(d / "server.pem", _cert("registry", server_key, (ca, ca_key), server=True)),
        server_key=_write(d / "server.key", key=server_key),
        client_cert=_write(d / "client.pem", _cert("worker-7", client_key, (ca, ca_key))),
        client_key=_write(d / "client.key", key=client_key),
        other_ca=_write(d / "other-ca.pem", other),
        other_client_cert=_write(d / "other-client.pem", _cert("intruder", other_client_key, (other, other_key))),
        other_client_key=_write(d / "other-client.key", key=other_client_key),
    )


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki) -> Iterator[EmbeddedRegistry]:
    with serve(tmp_path, tls=ServerTls(pki.server_cert, pki.server_key)) as server:
        yield server


def test_tls_serves_clients_that_trust_its_ca_only(tls_server: EmbeddedRegistry, pki: Pki) -> None:
    with client(tls_server, ca=pki.ca) as trusting:
        trusting.get_kernel(KEY)
    with client(tls_server, ca=pki.other_ca) as wrong_ca, pytest.raises(Unavailable):
        wrong_ca.get_kernel(KEY)
    with client(tls_server) as plaintext, pytest.raises(Unavailable):
        plaintext.get_kernel(KEY)


def test_mutual_tls_needs_a_client_certificate_from_its_ca(tmp_path: Path, pki: Pki) -> None:
    with serve(tmp_path, tls=ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)) as server:
        with client(server, ca=pki.ca, cert=pki.client_cert, key=pki.client_key) as member:
            member.get_kernel(KEY)
        with client(server, ca=pki.ca) as no_cert, pytest.raises(Unavailable):
            no_cert.get_kernel(KEY)
        with client(server, ca=pki.ca, cert=pki.other_client_cert, key=pki.other_client_key) as intruder:
            with pytest.raises(Unavailable):
                intruder.get_kernel(KEY)


def test_tls_and_tokens_together_over_the_cli(tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("KREG_TOKEN", "KREG_TOKEN_FILE", "KREG_TLS_CA"):
        monkeypatch.setenv(env, "")
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["reader"])
    config = {"tls": ServerTls(pki.server_cert, pki.server_key), "auth_file": auth_file(tmp_path, readers=True)}
    with serve(tmp_path, **config) as server:
        code = main([
            "--registry", server.address, "--timeout", "3", "--token-file", str(token_file), "--tls-ca", str(pki.ca), "ls",
        ])
    assert code == 0, capsys.readouterr().err


def test_client_credentials_are_checked_before_any_call(pki: Pki) -> None:
    with pytest.raises(InvalidArgument, match="needs its key"):
        Credentials(ca=pki.ca, cert=pki.client_cert)
    with pytest.raises(InvalidArgument, match="give the CA"):
        Credentials(cert=pki.client_cert, key=pki.client_key)
    assert Role.ADMIN > Role.WORKER > Role.READER


def test_serve_hands_its_embedded_workers_a_worker_token_and_its_certificate(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from kreg.cli.serve import worker_env

    for env in ("KREG_TOKEN", "KREG_TOKEN_FILE", "KREG_TLS_CA", "KREG_TLS_CERT"):
        monkeypatch.delenv(env, raising=False)
    tokens = auth_file(tmp_path, readers=True)
    args = argparse.Namespace(auth_file=str(tokens), tls_cert=str(pki.server_cert), tls_client_ca=None)
    env = worker_env(args)
    assert env is not None and env["KREG_TOKEN"] == TOKENS["worker"] and env["KREG_TLS_CA"] == str(pki.server_cert)
    # Mutual TLS: they would need a client certificate of their own.
    assert worker_env(argparse.Namespace(auth_file=None, tls_cert=str(pki.server_cert), tls_client_ca=str(pki.ca))) is None
    readers_only = tmp_path / "readers"
    readers_only.write_text(f"reader {'r' * 20}\n")
    assert worker_env(argparse.Namespace(auth_file=str(readers_only), tls_cert=None, tls_client_ca=None)) is None
