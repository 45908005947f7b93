"""A manifest pinned to a file: reproducible and offline serving-host starts.

`kreg pin` resolves a model's kernels once and writes what the registry answered; a host
that starts from the lockfile loads exactly those binaries (same digests, so the same
numerics on every host and every rank) and needs no registry at all when the blobs are in
its node cache. The pinned entries are the `Resolution`s GetManifest returns, unchanged, so
the loader has one input type whichever way the answer came.

The file is JSON through kreg.serde, indented and key-sorted so that a lockfile checked into
a repository diffs readably, with a "format" field so an older kreg refuses a newer file
instead of misreading it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kreg import serde
from kreg.errors import InvalidArgument
from kreg.keys import ANY_MODEL, KernelKey
from kreg.model import Digest, Resolution, Toolchain

FORMAT = "kreg-lock/1"


@dataclass(frozen=True)
class Lockfile:
    """Resolutions for one (platform, arch, model), as resolved at `created_at` for `toolchain`."""

    platform: str
    arch: str
    model: str
    toolchain: Toolchain | None
    created_at: float
    resolutions: tuple[Resolution, ...]

    def __post_init__(self) -> None:
        # A lockfile answers for one host kind: a foreign or duplicated key is a broken pin,
        # better refused when the file is written or read than when a kernel is loaded.
        object.__setattr__(self, "resolutions", tuple(self.resolutions))
        seen: set[KernelKey] = set()
        for r in self.resolutions:
            k = r.key
            if (k.platform, k.arch) != (self.platform, self.arch) or k.model not in (self.model, ANY_MODEL):
                raise InvalidArgument(
                    f"lockfile for {self.platform}/{self.arch}/{self.model} cannot pin key {str(k)!r}: "
                    f"platform, arch and model (or '{ANY_MODEL}') must match"
                )
            if k in seen:
                raise InvalidArgument(f"lockfile pins key {str(k)!r} twice")
            seen.add(k)

    @functools.cached_property
    def _by_key(self) -> dict[KernelKey, Resolution]:
        return {r.key: r for r in self.resolutions}

    def lookup(self, key: KernelKey) -> Resolution | None:
        """The pinned resolution for `key`: exact first, then the model-agnostic ('*') pin."""
        found = self._by_key.get(key)
        if found is None and key.model != ANY_MODEL:
            found = self._by_key.get(key.with_model(ANY_MODEL))
        return found

    def digests(self) -> set[Digest]:
        """Every blob the pinned artifacts reference: what must be in the node cache to start offline."""
        return {d for r in self.resolutions if r.artifact is not None for d in r.artifact.digests()}

    # ------------------------------------------------------------ file form

    def to_json(self) -> str:
        doc: dict[str, Any] = {"format": FORMAT, **serde.to_jsonable(self)}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def save(self, path: Path | str) -> None:
        """Write atomically: a reader sees the old lockfile or the new one, never half of one."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def load(path: Path | str) -> Lockfile:
        """Read a lockfile; InvalidArgument naming the path when it is missing or unreadable."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidArgument(f"lockfile {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"lockfile {str(path)!r} cannot be read: {e}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"lockfile {str(path)!r} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"lockfile {str(path)!r} is not a JSON object")
        fmt = doc.pop("format", None)
        if fmt != FORMAT:
            raise InvalidArgument(f"lockfile {str(path)!r} has format {fmt!r}; this kreg reads {FORMAT!r}")
        missing = [f.name for f in dataclasses.fields(Lockfile) if f.name not in doc]
        if missing:
            raise InvalidArgument(f"lockfile {str(path)!r} lacks field(s) {', '.join(missing)}")
        try:
            lock: Lockfile = serde.from_jsonable(Lockfile, doc)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            # ValueError covers InvalidArgument from __post_init__ and bad keys from KernelKey.parse.
            raise InvalidArgument(f"lockfile {str(path)!r} is malformed: {e}") from None
        return lock
