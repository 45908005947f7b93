"""The node-local content-addressed blob cache of a serving host.

A host that restarts should not download its kernels again, and a host whose registry is
down must still start from what it fetched before (DESIGN §1, §7). The cache is just files:

    root/sha256/ab/abcdef...              a complete, verified blob
    root/sha256/ab/abcdef....<pid>-<tid>.partial   a download in progress (one per writer)

Three rules make it safe to share between processes on one host without a lock server:

- Nothing appears under a final name unless its bytes matched the digest: writes go to a
  temporary file in the same directory, are fsynced, then `os.replace`d into place, so a
  crash leaves a stray temp file at worst, never a truncated blob.
- Every read re-hashes the file. Disks, people and half-copied caches corrupt files; a
  kernel binary that does not match its digest must never be loaded (triton's file cache
  skips this step). A bad file is deleted and reported as a miss, so the caller refetches.
- Partial downloads are named per process and thread. Two processes fetching the same blob
  each append to their own file and each commit a verified copy; the second rename
  replaces identical bytes. Resume is within a writer's life (after a dropped stream), which
  is what matters for blobs of kernel size; `sweep_partials` removes orphans of dead writers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from kreg.errors import DataLoss, InvalidArgument
from kreg.model import Digest

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PARTIAL_SUFFIX = ".partial"


def _check_digest(digest: Digest) -> None:
    """Reject digests that could escape the cache directory or never match anything."""
    if not isinstance(digest.sha256, str) or not _SHA256.fullmatch(digest.sha256):
        raise InvalidArgument(f"invalid sha256 {digest.sha256!r}: want 64 lowercase hex characters")
    if isinstance(digest.size_bytes, bool) or not isinstance(digest.size_bytes, int) or digest.size_bytes < 0:
        raise InvalidArgument(
            f"invalid blob size {digest.size_bytes!r} for sha256 {digest.sha256[:12]}: want an integer >= 0"
        )


def _mismatch(digest: Digest, data: bytes) -> str | None:
    """Why `data` is not the blob `digest` names, or None when it is."""
    if len(data) != digest.size_bytes:
        return f"size {len(data)} != expected {digest.size_bytes}"
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest.sha256:
        return f"sha256 {actual[:12]}... != expected {digest.sha256[:12]}..."
    return None


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk too."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BlobCache:
    """Content-addressed files under `root`, verified on every read."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------ paths

    def path(self, digest: Digest) -> Path:
        """Where the complete blob lives: root/sha256/<first two hex>/<sha256>."""
        _check_digest(digest)
        return self.root / "sha256" / digest.sha256[:2] / digest.sha256

    def partial_path(self, digest: Digest) -> Path:
        """This writer's in-progress download of `digest`; its directory exists on return,
        so the caller can open it for append straight away."""
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f"{digest.sha256}.{os.getpid()}-{threading.get_ident()}{_PARTIAL_SUFFIX}")

    # ------------------------------------------------------------ complete blobs

    def has(self, digest: Digest) -> bool:
        """A stat, not a hash: the blob is present with the right size. `get` is what to trust."""
        try:
            return self.path(digest).stat().st_size == digest.size_bytes
        except FileNotFoundError:
            return False

    def get(self, digest: Digest) -> bytes | None:
        """The blob's bytes, re-verified; None when absent or corrupt (a corrupt file is deleted)."""
        path = self.path(digest)
        problem: str | None
        try:
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                # A wrong size is known without reading: don't pull a huge bad file into memory.
                if stat.st_size != digest.size_bytes:
                    data, problem = b"", f"size {stat.st_size} != expected {digest.size_bytes}"
                else:
                    data = f.read()
                    problem = _mismatch(digest, data)
        except FileNotFoundError:
            return None
        if problem is None:
            return data
        logger.warning("blob cache: %s is corrupt (%s); evicting it", path, problem)
        self._unlink_if_same(path, stat)
        return None

    def put(self, digest: Digest, data: bytes) -> Path:
        """Store verified bytes under their digest; DataLoss (and nothing written) on mismatch."""
        path = self.path(digest)
        problem = _mismatch(digest, data)
        if problem is not None:
            raise DataLoss(
                f"blob {digest.sha256[:12]}: refusing to cache bytes that do not match the digest ({problem})"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest.sha256}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return path

    def evict(self, digest: Digest) -> bool:
        """Remove the blob; True when there was one."""
        try:
            self.path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------ resumable downloads

    def partial_size(self, digest: Digest) -> int:
        """Bytes this writer already holds for `digest`: the offset to resume the stream at.

        A partial longer than the blob can never verify; it is emptied (not deleted, so an
        append-mode handle the caller holds keeps working) and 0 returned.
        """
        path = self.partial_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        if size > digest.size_bytes:
            logger.warning(
                "blob cache: partial %s has %d bytes, more than the blob's %d; restarting",
                path,
                size,
                digest.size_bytes,
            )
            os.truncate(path, 0)
            return 0
        return size

    def commit_partial(self, digest: Digest) -> bytes:
        """Verify this writer's partial download and move it into place; returns the bytes.

        On a mismatch the partial is deleted (resuming from bad bytes can never succeed) and
        DataLoss raised, so the caller starts over from offset 0.
        """
        partial = self.partial_path(digest)
        try:
            with open(partial, "rb") as f:
                data = f.read()
                os.fsync(f.fileno())
        except FileNotFoundError:
            data = b""  # nothing appended: only an empty blob can verify
        problem = _mismatch(digest, data)
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise DataLoss(
                f"blob {digest.sha256[:12]}: downloaded bytes do not match ({problem}); partial discarded"
            )
        final = self.path(digest)
        if partial.exists():
            os.replace(partial, final)
            _fsync_dir(final.parent)
        else:
            self.put(digest, data)
        return data

    def sweep_partials(self, older_than_s: float = 24 * 3600.0) -> int:
        """Delete partial downloads untouched for `older_than_s` (their writers are gone);
        returns how many. Call at start-up; a live writer touches its file on every chunk."""
        cutoff = time.time() - older_than_s
        removed = 0
        for partial in self.root.glob(f"sha256/*/*{_PARTIAL_SUFFIX}"):
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _unlink_if_same(path: Path, seen: os.stat_result) -> None:
        """Delete `path` only if it is still the file we judged corrupt: another process may
        have replaced it with a good copy since we read it."""
        try:
            now = path.stat()
            if (now.st_dev, now.st_ino) == (seen.st_dev, seen.st_ino):
                path.unlink()
        except FileNotFoundError:
            pass
