"""Who vouches for a kernel: ed25519 signatures over an artifact's content.

A worker signs the content id of what it publishes (serde.artifact_content_id: the sha256 of
everything but the registry's own fields and the signature, which covers every blob's digest),
and the registry keeps the signature in the record. A serving host that trusts keys
(`KREG_TRUSTED_KEYS`, or `kreg.ops.configure(trusted_keys=...)`) loads an artifact only when
its record still hashes to its id and a trusted key signed that id; fetch has already checked
every blob against its digest. Several trusted keys let a fleet rotate: trust the new key,
sign with it, then drop the old one.

    kreg keygen worker-key.pem          # a private key, 0600, and worker-key.pub beside it
    KREG_SIGNING_KEY=worker-key.pem kreg worker ...
    KREG_TRUSTED_KEYS=worker-key.pub:old-key.pub python serve.py

cryptography is imported only when a key is loaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg import serde
from kreg.errors import InvalidArgument
from kreg.model import Artifact, Signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
# Domain separation: a signature over an artifact id can never be replayed as anything else.
CONTEXT = b"kreg-artifact-v1\n"


class UntrustedArtifact(Exception):
    """An artifact that must not be loaded, and why."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the sha256 of its raw bytes, 16 hex digits."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"signing key {path}: {e}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise InvalidArgument(f"signing key {path}: not an ed25519 private key")
        return cls(private, key_id(private.public_key()))

    @classmethod
    def from_env(cls) -> SigningKey | None:
        path = os.environ.get("KREG_SIGNING_KEY")
        return cls.load(Path(path)) if path else None

    def sign(self, artifact: Artifact) -> Artifact:
        content = serde.artifact_content_id(artifact)
        return replace(artifact, signature=Signature(ALGORITHM, self.key_id, self.private.sign(CONTEXT + content.encode())))


def generate(path: Path) -> tuple[Path, str]:
    """A new private key at `path` (mode 0600) and its public key at `path` with .pub;
    returns (public key path, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path = Path(path).with_suffix(".pub")
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public_path, key_id(private.public_key())


@dataclass(frozen=True)
class TrustedKeys:
    keys: dict[str, Any]  # key id -> Ed25519PublicKey

    @classmethod
    def load(cls, paths: list[Path]) -> TrustedKeys:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys: dict[str, Any] = {}
        for path in paths:
            try:
                public = serialization.load_pem_public_key(Path(path).read_bytes())
            except (OSError, ValueError) as e:
                raise InvalidArgument(f"trusted key {path}: {e}") from None
            if not isinstance(public, Ed25519PublicKey):
                raise InvalidArgument(f"trusted key {path}: not an ed25519 public key")
            keys[key_id(public)] = public
        if not keys:
            raise InvalidArgument("no trusted keys given: trusting none would refuse every kernel")
        return cls(keys)

    @classmethod
    def from_env(cls) -> TrustedKeys | None:
        value = os.environ.get("KREG_TRUSTED_KEYS")
        return cls.load([Path(p) for p in value.split(os.pathsep) if p]) if value else None

    def verify(self, artifact: Artifact) -> None:
        """Raise UntrustedArtifact unless the record is unaltered and a trusted key signed it."""
        from cryptography.exceptions import InvalidSignature

        content = serde.artifact_content_id(artifact)
        if artifact.artifact_id and artifact.artifact_id != content:
            raise UntrustedArtifact(f"the record was altered: its content hashes to {content[:12]}, not its id")
        signature = artifact.signature
        if signature is None:
            raise UntrustedArtifact("it is not signed")
        if signature.algorithm != ALGORITHM:
            raise UntrustedArtifact(f"it is signed with {signature.algorithm!r}, not {ALGORITHM}")
        public = self.keys.get(signature.key_id)
        if public is None:
            raise UntrustedArtifact(f"it is signed by key {signature.key_id!r}, which is not trusted here")
        try:
            public.verify(signature.signature, CONTEXT + content.encode())
        except InvalidSignature:
            raise UntrustedArtifact(f"its signature by {signature.key_id} does not verify") from None
