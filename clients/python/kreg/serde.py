"""Domain dataclasses <-> JSON-compatible values.

One codec for everything that leaves memory as JSON: LMDB records, the lockfile and the
CLI's --json output. Enums travel by name, keys by their canonical text, bytes as hex.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import hashlib
import json
import types
import typing
from typing import Any, Mapping, TypeVar

from kreg.keys import KernelKey
from kreg.model import Artifact, ArtifactState

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, KernelKey):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(tp: Any, data: Any) -> Any:
    """Rebuild a value of type `tp` from what to_jsonable produced."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return from_jsonable(args[0], data)
    if tp is KernelKey:
        return KernelKey.parse(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        # Fields added later keep their defaults; unknown fields from newer writers are ignored.
        return tp(**{k: from_jsonable(hints[k], v) for k, v in data.items() if k in known})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp[data]
    if tp is bytes:
        return bytes.fromhex(data)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(from_jsonable(item, v) for v in data)
    if origin in (dict, collections.abc.Mapping):
        _, value_type = typing.get_args(tp)
        return {k: from_jsonable(value_type, v) for k, v in data.items()}
    if tp is float:
        return float(data)
    return data


def dumps(value: Any) -> bytes:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":")).encode()


def loads(tp: type[T], raw: bytes) -> T:
    return typing.cast(T, from_jsonable(tp, json.loads(raw)))


def artifact_content_id(artifact: Artifact) -> str:
    """sha256 of an artifact's content: everything but the fields the registry assigns
    (id, state, publish and retraction times) and the signature, which signs this content."""
    content = dataclasses.replace(
        artifact,
        artifact_id="",
        state=ArtifactState.ACTIVE,
        retract_reason="",
        published_at=0.0,
        retracted_at=0.0,
        signature=None,
    )
    return hashlib.sha256(dumps(content)).hexdigest()
