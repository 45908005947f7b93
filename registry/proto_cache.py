"""Read-path answers as protobuf, converted once: serving hosts are answered the same few
resolutions and artifacts over and over, and building their messages was a quarter of a
GetManifest.

Artifacts are keyed by everything the registry can change about a stored one (its content
id fixes the rest): state, the retraction's reason and time, the publish time. Resolutions
by identity: the core hands out the same Resolution object until the store's next write, and
each entry holds its resolution, so an id is never reused while cached. Both bounded (LRU).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from kreg import convert as cv
from kreg.model import Artifact, Resolution
from kreg.v1 import registry_pb2 as pb

_KEPT = 4096
_cache: OrderedDict[tuple[object, ...], pb.Artifact] = OrderedDict()
_resolutions: OrderedDict[int, tuple[Resolution, pb.Resolution]] = OrderedDict()
_lock = threading.Lock()


def _kept(cache: OrderedDict[Any, Any], key: object, value: object) -> None:
    with _lock:
        cache[key] = value
        while len(cache) > _KEPT:
            cache.popitem(last=False)


def resolution_to_proto(resolution: Resolution) -> pb.Resolution:
    """cv.resolution_to_proto with stored artifacts converted once; the message is shared
    (callers put it into a reply, which copies it, and never change it)."""
    with _lock:
        hit = _resolutions.get(id(resolution))
        if hit is not None and hit[0] is resolution:
            _resolutions.move_to_end(id(resolution))
            return hit[1]
    message = cv.resolution_to_proto(resolution, stored_artifact_to_proto)
    _kept(_resolutions, id(resolution), (resolution, message))
    return message


def stored_artifact_to_proto(artifact: Artifact) -> pb.Artifact:
    """cv.artifact_to_proto for an artifact read from the store. The message is shared:
    callers put it into a reply (which copies it) and never change it."""
    if not artifact.artifact_id:
        return cv.artifact_to_proto(artifact)
    key = (artifact.artifact_id, artifact.state, artifact.retract_reason, artifact.published_at, artifact.retracted_at)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    message = cv.artifact_to_proto(artifact)
    _kept(_cache, key, message)
    return message
