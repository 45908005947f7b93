"""Who may call what: bearer tokens from a token file, three roles, checked per call.

    # kreg serve --auth-file FILE: one token per line, "ROLE TOKEN [NAME]"
    admin   9f2c...   ops-oncall
    worker  41be...   gpu-pool-a
    reader  07d1...   serving-fleet

Roles nest: a worker may do what a reader may, an admin what a worker may. Reads (resolve,
fetch, list, describe, watch, jobs) need a reader token only when the file lists at least
one reader: without, reads stay open and only writes are guarded (a fleet's serving hosts
then need no secret). Writes need a worker (lease, renew, complete, fail, publish, request
generation); retracting needs an admin. A call without a known token is UNAUTHENTICATED,
one whose token's role is too low PERMISSION_DENIED. Health and reflection are not ours and
stay open. Tokens are compared in constant time: the caller's token is hashed and compared
against every known token's hash, so neither timing nor an early exit says how close it was.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kreg.errors import InvalidArgument, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

BEARER = "bearer "
MIN_TOKEN_CHARS = 16


class Role(enum.IntEnum):
    READER = 1
    WORKER = 2
    ADMIN = 3


# The least role each method of kreg.v1.KernelRegistryService needs. A method missing here
# needs ADMIN: a new RPC is closed until someone decides otherwise.
METHOD_ROLES: dict[str, Role] = {
    "GetKernel": Role.READER,
    "GetManifest": Role.READER,
    "FetchBlob": Role.READER,
    "WatchKernel": Role.READER,
    "ListKernels": Role.READER,
    "DescribeKernel": Role.READER,
    "GetJob": Role.READER,
    "ListJobs": Role.READER,
    "ListWorkers": Role.READER,
    "RequestGeneration": Role.WORKER,
    "LeaseJob": Role.WORKER,
    "RenewLease": Role.WORKER,
    "CompleteJob": Role.WORKER,
    "FailJob": Role.WORKER,
    "PublishKernel": Role.WORKER,
    "RetractKernel": Role.ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: its role and the name the file gives it (for the audit log)."""

    role: Role
    name: str


@dataclass(frozen=True)
class TokenTable:
    entries: tuple[tuple[bytes, Principal], ...]  # (sha256 of the token, whose)

    @property
    def reads_open(self) -> bool:
        return not any(p.role is Role.READER for _, p in self.entries)

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        """Parse a token file; InvalidArgument names the line that is wrong."""
        try:
            text = path.read_text()
            mode = path.stat().st_mode
        except OSError as e:
            raise InvalidArgument(f"auth file {path}: {e.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("auth file %s is readable by group or others: chmod 600 it", path)
        return cls.parse(text.splitlines(), str(path))

    @classmethod
    def parse(cls, lines: Sequence[str], origin: str = "auth file") -> TokenTable:
        entries: list[tuple[bytes, Principal]] = []
        seen: set[bytes] = set()
        for number, role, token, name in _lines(lines, origin):
            digest = hashlib.sha256(token.encode()).digest()
            if digest in seen:
                raise InvalidArgument(f"{origin}:{number}: this token is listed twice")
            seen.add(digest)
            entries.append((digest, Principal(role, name)))
        if not entries:
            raise InvalidArgument(f"{origin}: no tokens (an empty auth file would lock everyone out)")
        return cls(tuple(entries))

    def identify(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, principal in self.entries:  # every entry, match or not: constant time
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    def caller(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal | None:
        """Whose token the call carries (None: no token); Unauthenticated for an unknown one."""
        token = _bearer(metadata)
        if token is None:
            return None
        principal = self.identify(token)
        if principal is None:
            raise Unauthenticated("the token is not known to this registry")
        return principal

    def permit(self, method: str, caller: Principal | None) -> None:
        """Raise Unauthenticated or PermissionDenied unless `caller` may call `method`."""
        needed = METHOD_ROLES.get(method, Role.ADMIN)
        if caller is None:
            if needed is Role.READER and self.reads_open:
                return
            raise Unauthenticated(f"{method} needs a token: send 'authorization: Bearer <token>'")
        if caller.role < needed:
            raise PermissionDenied(f"{method} needs the {needed.name.lower()} role; {caller.name} is a {caller.role.name.lower()}")


def first_token(path: Path, role: Role) -> str | None:
    """The first token of `role` or above in a token file: what `kreg serve` hands its
    embedded workers."""
    return next((token for _, r, token, _ in _lines(path.read_text().splitlines(), str(path)) if r >= role), None)


def _lines(lines: Sequence[str], origin: str) -> Iterator[tuple[int, Role, str, str]]:
    """(line number, role, token, name) of each entry; InvalidArgument names a bad line."""
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise InvalidArgument(f"{origin}:{number}: want 'ROLE TOKEN [NAME]', got {len(fields)} fields")
        role_name, token = fields[0], fields[1]
        try:
            role = Role[role_name.upper()]
        except KeyError:
            raise InvalidArgument(f"{origin}:{number}: role {role_name!r} is not one of reader, worker, admin") from None
        if len(token) < MIN_TOKEN_CHARS:
            raise InvalidArgument(f"{origin}:{number}: a token needs at least {MIN_TOKEN_CHARS} characters")
        yield number, role, token, fields[2] if len(fields) == 3 else f"{role.name.lower()}@{origin}:{number}"


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            if text.lower().startswith(BEARER):
                return text[len(BEARER):].strip()
    return None
