"""Signed kernels: workers sign, the registry keeps the signature, a serving host that trusts
keys loads only what they signed — tampered blobs and records are refused, counted, and the
key falls back to the next resolution (the lockfile's pin, else the reference)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import kreg.ops
from integration.factories import KEY, TRITON_36, make_artifact
from kreg.client import Client
from kreg.credentials import Credentials
from kreg.errors import InvalidArgument
from kreg.lockfile import Lockfile
from kreg.model import Resolution, ResolutionKind, Runtime
from kreg.signing import SigningKey, TrustedKeys, UntrustedArtifact, generate


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[SigningKey, Path]]:
    made = {}
    for name in ("current", "previous", "stranger"):
        public, _ = generate(tmp_path / f"{name}.pem")
        made[name] = (SigningKey.load(tmp_path / f"{name}.pem"), public)
    return made


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    public, key_id = generate(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert SigningKey.load(tmp_path / "k.pem").key_id == key_id and public.exists()
    with pytest.raises(FileExistsError):
        generate(tmp_path / "k.pem")  # never overwrites a key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "ec.pub").write_bytes(other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(InvalidArgument, match="not an ed25519 public key"):
        TrustedKeys.load([tmp_path / "ec.pub"])
    with pytest.raises(InvalidArgument, match="trusted key .*k.pem"):
        TrustedKeys.load([tmp_path / "k.pem"])  # a private key where a public one belongs


def test_verification_names_each_reason_to_refuse(keys: dict[str, tuple[SigningKey, Path]]) -> None:
    artifact, _ = make_artifact()
    trusted = TrustedKeys.load([keys["current"][1], keys["previous"][1]])
    trusted.verify(keys["current"][0].sign(artifact))
    trusted.verify(keys["previous"][0].sign(artifact))  # rotation: the old key is still trusted
    cases = {
        "it is not signed": artifact,
        "not trusted here": keys["stranger"][0].sign(artifact),
        "does not verify": dataclasses.replace(
            keys["current"][0].sign(artifact), tier=artifact.tier, verdict=artifact.verdict,
            measurements=dataclasses.replace(artifact.measurements, speedup_vs_eager=99.0),
        ),
    }
    for why, candidate in cases.items():
        with pytest.raises(UntrustedArtifact, match=why):
            trusted.verify(candidate)


def _published(address: str, signer: SigningKey | None, tmp_path: Path, lock: bool = False) -> tuple[str, Path | None]:
    artifact, blobs = make_artifact()
    if signer is not None:
        artifact = signer.sign(artifact)
    lockfile = tmp_path / f"pin-{artifact.kernels[0].source.sha256[:8]}.lock.json" if lock else None
    with Client(address, timeout_s=5, runtime=Runtime(TRITON_36), credentials=Credentials()) as client:
        stored = client.publish(artifact, blobs)
        if lockfile is not None:
            client.pin_manifest(KEY.platform, KEY.arch, KEY.model, [KEY.operator], lockfile)
    return stored.artifact_id, lockfile


def _decide(address: str, trusted: list[Path], lockfile: Path | None = None) -> tuple[kreg.ops.Decision, list]:  # type: ignore[name-defined]
    with Client(address, timeout_s=5, runtime=Runtime(TRITON_36), credentials=Credentials()) as client:
        provider = kreg.ops.configure(
            client, model=KEY.model, platform=KEY.platform, arch=KEY.arch, trusted_keys=trusted, lockfile=lockfile
        )
        try:
            (decision,) = provider.preload([KEY.operator])
            return decision, list(provider.refusals)
        finally:
            kreg.ops.reset()


def test_the_registry_keeps_the_signature_and_the_host_checks_it(server, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signer, public = keys["current"]
    artifact_id, _ = _published(server.address, signer, tmp_path)
    with Client(server.address, timeout_s=5, credentials=Credentials()) as client:
        (stored,) = client.describe_kernel(artifact_id)
    assert stored.signature is not None and stored.signature.key_id == signer.key_id
    TrustedKeys.load([public]).verify(stored)  # kept byte for byte: it still verifies

    decision, refusals = _decide(server.address, [public])
    # Trusted, so it is loaded; on this CPU host the binary itself then cannot load.
    assert refusals == [] and "refused" not in decision.reason and decision.artifact_id == artifact_id

    decision, refusals = _decide(server.address, [keys["stranger"][1]])
    assert decision.path == "reference" and "refused: it is signed by key" in decision.reason
    assert [(str(k), a) for k, a, _ in refusals] == [(str(KEY), artifact_id)]


def test_a_refused_kernel_falls_back_to_the_lockfiles_pin(server, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signer, public = keys["current"]
    pinned_id, lockfile = _published(server.address, signer, tmp_path, lock=True)
    # Then someone publishes a faster-looking kernel no trusted key signed.
    unsigned_artifact, blobs = make_artifact(median_ms=0.01)
    with Client(server.address, timeout_s=5, credentials=Credentials()) as client:
        served = client.publish(unsigned_artifact, blobs)
    assert lockfile is not None
    decision, refusals = _decide(server.address, [public], lockfile)
    assert [a for _, a, _ in refusals] == [served.artifact_id]
    assert decision.artifact_id == pinned_id and "refused" not in decision.reason


def test_a_tampered_record_is_refused(keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What a compromised registry or cache could serve: a signed record with a field changed."""
    signer, public = keys["current"]
    artifact, _ = make_artifact()
    signed = signer.sign(artifact)
    from kreg import serde

    tampered = dataclasses.replace(signed, artifact_id=serde.artifact_content_id(signed), tier=artifact.tier,
                                   kernels=(dataclasses.replace(signed.kernels[0], entry_point="evil"),))
    resolution = Resolution(KEY, ResolutionKind.BINARY, "served", artifact=tampered)
    lock = Lockfile(KEY.platform, KEY.arch, KEY.model, TRITON_36, 0.0, (resolution,))
    lock.save(tmp_path / "tampered.lock.json")
    provider = kreg.ops.configure(
        None, model=KEY.model, platform=KEY.platform, arch=KEY.arch, lockfile=tmp_path / "tampered.lock.json",
        trusted_keys=[public], runtime_toolchain=TRITON_36,
    )
    try:
        (decision,) = provider.preload([KEY.operator])
    finally:
        kreg.ops.reset()
    assert decision.path == "reference" and "record was altered" in decision.reason
    assert len(provider.refusals) == 1


def test_a_tampered_blob_is_refused_and_counted(server, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bytes that no longer match their digest (a flipped bit on the registry's disk) never load."""
    signer, public = keys["current"]
    artifact_id, _ = _published(server.address, signer, tmp_path)
    with Client(server.address, timeout_s=5, credentials=Credentials()) as client:
        (stored,) = client.describe_kernel(artifact_id)
    binary = stored.kernels[0].binary
    assert binary is not None
    server.running.store._env.write(lambda txn: txn.put(txn.dbs.blobs, binary.sha256.encode(), b"\x7fELF not the kernel"))
    with Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36), credentials=Credentials()) as client:
        provider = kreg.ops.configure(
            client, model=KEY.model, platform=KEY.platform, arch=KEY.arch, trusted_keys=[public],
        )
        try:
            (decision,) = provider.preload([KEY.operator])
        finally:
            kreg.ops.reset()
    assert decision.path == "reference" and "DataLoss" in decision.reason
    assert [(a, "corrupt" in why or "match" in why) for _, a, why in provider.refusals] == [(artifact_id, True)]


def test_a_tampered_blob_falls_back_to_the_lockfiles_pin(server, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signer, public = keys["current"]
    pinned_id, lockfile = _published(server.address, signer, tmp_path, lock=True)
    newer, blobs = make_artifact(median_ms=0.01)
    with Client(server.address, timeout_s=5, credentials=Credentials()) as client:
        served = client.publish(signer.sign(newer), blobs)
    binary = served.kernels[0].binary
    assert binary is not None
    server.running.store._env.write(lambda txn: txn.put(txn.dbs.blobs, binary.sha256.encode(), b"flipped bits"))
    decision, refusals = _decide(server.address, [public], lockfile)
    assert [a for _, a, _ in refusals] == [served.artifact_id]
    assert decision.artifact_id == pinned_id and "refused" not in decision.reason
