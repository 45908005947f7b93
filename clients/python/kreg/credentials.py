"""What a client presents to a registry: a bearer token and TLS material.

    Client("registry.internal:7600", credentials=Credentials(token="...", ca=Path("ca.pem")))

Without `credentials`, a Client reads them from the environment, so workers, serving hosts
and the CLI need no code for it:

    KREG_TOKEN / KREG_TOKEN_FILE   the bearer token (the file keeps it out of `ps`)
    KREG_TLS_CA                    CA bundle to verify the registry by; setting it turns TLS on
    KREG_TLS_CERT, KREG_TLS_KEY    a client certificate and key, for mutual TLS
    KREG_TLS_SERVER_NAME           the name to verify when it is not the address's host
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from kreg.errors import InvalidArgument


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise InvalidArgument("a client certificate needs its key, and a key its certificate")
        if self.cert is not None and self.ca is None:
            raise InvalidArgument("a client certificate is for mutual TLS: give the CA to verify the registry by too")

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @classmethod
    def from_env(cls) -> Credentials:
        token = os.environ.get("KREG_TOKEN") or None
        token_file = os.environ.get("KREG_TOKEN_FILE")
        if token is None and token_file:
            try:
                token = Path(token_file).read_text().strip() or None
            except OSError as e:
                raise InvalidArgument(f"KREG_TOKEN_FILE {token_file}: {e.strerror}") from None

        def path(name: str) -> Path | None:
            value = os.environ.get(name)
            return Path(value) if value else None

        return cls(
            token, path("KREG_TLS_CA"), path("KREG_TLS_CERT"), path("KREG_TLS_KEY"),
            os.environ.get("KREG_TLS_SERVER_NAME") or None,
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self, target: str, options: list[tuple[str, object]]) -> grpc.Channel:
        if not self.tls:
            return grpc.insecure_channel(target, options=options)
        assert self.ca is not None
        try:
            ca = self.ca.read_bytes()
            cert = self.cert.read_bytes() if self.cert else None
            key = self.key.read_bytes() if self.key else None
        except OSError as e:
            raise InvalidArgument(f"tls: cannot read {e.filename}: {e.strerror}") from None
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        if self.server_name:
            options = [*options, ("grpc.ssl_target_name_override", self.server_name)]
        return grpc.secure_channel(target, credentials, options=options)
