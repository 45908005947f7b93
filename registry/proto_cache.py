"""Read-path answers as protobuf, converted once: serving hosts are answered the same few
resolutions and artifacts over and over, and building their messages was a quarter of a
GetManifest.

Artifacts are keyed by everything the registry can change about a stored one (its content
id fixes the rest): state, the retraction's reason and time, the publish time. Resolutions
by identity: the core hands out the same Resolution object until the store's next write, and
each entry holds its resolution, so an id is never reused while cached; with each, the
serialised GetKernel reply and GetManifest part, so a cached answer is a join of bytes (the
interceptor passes bytes through). Both bounded (LRU).
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from kreg import convert as cv
from kreg.model import Artifact, Resolution
from kreg.v1 import registry_pb2 as pb
from registry.store.lru import Lru

_ARTIFACTS: Lru[tuple[object, ...], pb.Artifact] = Lru(4096)
_RESOLUTIONS: Lru[int, _Converted] = Lru(4096)


class _Converted:
    """One resolution's message and, once asked for, the serialised replies that carry it."""

    def __init__(self, resolution: Resolution) -> None:
        self.resolution = resolution
        self.message = cv.resolution_to_proto(resolution, stored_artifact_to_proto)
        self._kernel_reply: bytes | None = None
        self._manifest_part: bytes | None = None

    def kernel_reply(self) -> bytes:
        if self._kernel_reply is None:
            self._kernel_reply = pb.GetKernelResponse(resolution=self.message).SerializeToString()
        return self._kernel_reply

    def manifest_part(self) -> bytes:
        # A manifest reply holding just this resolution: serialised replies concatenate into
        # one whose repeated field holds them all (protobuf merges concatenated messages).
        if self._manifest_part is None:
            self._manifest_part = pb.GetManifestResponse(resolutions=[self.message]).SerializeToString()
        return self._manifest_part


def _converted(resolution: Resolution) -> _Converted:
    hit = _RESOLUTIONS.get(id(resolution))
    if hit is not None and hit.resolution is resolution:
        return hit
    converted = _Converted(resolution)
    _RESOLUTIONS.put(id(resolution), converted)
    return converted


def resolution_to_proto(resolution: Resolution) -> pb.Resolution:
    """cv.resolution_to_proto with stored artifacts converted once; the message is shared
    (callers put it into a reply, which copies it, and never change it)."""
    return _converted(resolution).message


def kernel_reply(resolution: Resolution) -> bytes:
    """The serialised GetKernelResponse."""
    return _converted(resolution).kernel_reply()


def manifest_parts(resolutions: list[Resolution]) -> bytes:
    """The serialised GetManifestResponse without its timestamp, from each resolution's kept part."""
    return b"".join(_converted(r).manifest_part() for r in resolutions)


def manifest_stamp(generated_at_ns: int) -> bytes:
    """The timestamp that completes manifest_parts into a reply (concatenated messages merge)."""
    stamp = pb.GetManifestResponse(generated_at=timestamp_pb2.Timestamp(seconds=generated_at_ns // 10**9, nanos=generated_at_ns % 10**9))
    return stamp.SerializeToString()


def stored_artifact_to_proto(artifact: Artifact) -> pb.Artifact:
    """cv.artifact_to_proto for an artifact read from the store. The message is shared:
    callers put it into a reply (which copies it) and never change it."""
    if not artifact.artifact_id:
        return cv.artifact_to_proto(artifact)
    key = (artifact.artifact_id, artifact.state, artifact.retract_reason, artifact.published_at, artifact.retracted_at)
    message = _ARTIFACTS.get(key)
    if message is None:
        message = cv.artifact_to_proto(artifact)
        _ARTIFACTS.put(key, message)
    return message
