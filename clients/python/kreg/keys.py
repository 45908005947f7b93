"""KernelKey: what a kernel is for, with one canonical text form that round-trips.

    nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}

platform/arch/model/name@version{params}. Params are sorted by name in the canonical
form; `{}` is omitted when there are none. The sha256 of the canonical text is the
key's id (the LMDB key).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

PLATFORMS = ("nvidia", "amd", "mtia", "cpu")
ANY_MODEL = "*"
MAX_KEY_LENGTH = 512
MAX_PARAMS = 16

# Exact generations only: a binary for sm_120 served to sm_121 is a silent wrong result,
# so families ("hopper", "gfx9", "sm_9x") must not parse.
_ARCH_PATTERNS = {
    "nvidia": re.compile(r"sm_[1-9][0-9]{1,2}[af]?"),
    "amd": re.compile(r"gfx[0-9][0-9a-f]{2,3}"),
    "mtia": re.compile(r"mtia_v[0-9]{1,2}[a-z]?"),
    "cpu": re.compile(r"x86_64|aarch64|riscv64|ppc64le|s390x"),
}
_MODEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OP_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")
_OPERATOR = re.compile(r"(?P<name>[^@{}]*)@(?P<version>[^@{}]*)(?:\{(?P<params>[^{}]*)\})?")
_MAX_VERSION = 1_000_000
_VERSION = re.compile(r"[1-9][0-9]{0,6}")  # ASCII only: str.isdigit() admits '١' and '²'


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class OperatorSpec:
    """An operator version plus its compile-time specialization (dtypes, fixed dims, flags)."""

    name: str
    version: int
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(bool(_OP_NAME.fullmatch(self.name)), f"invalid operator name {self.name!r}: want [a-z][a-z0-9_]*, at most 64")
        _check(
            isinstance(self.version, int) and not isinstance(self.version, bool) and 1 <= self.version <= _MAX_VERSION,
            f"invalid operator version {self.version!r}: want an integer in 1..{_MAX_VERSION}",
        )
        _check(
            len(self.params) <= MAX_PARAMS,
            f"too many operator params ({len(self.params)} > {MAX_PARAMS}) in {self.name!r}: {sorted(self.params)!r}",
        )
        for name, value in self.params.items():
            _check(bool(_PARAM_NAME.fullmatch(name)), f"invalid param name {name!r}: want an identifier, at most 32")
            _check(
                isinstance(value, str) and bool(_PARAM_VALUE.fullmatch(value)),
                f"invalid value {value!r} for param {name!r}: want [A-Za-z0-9_.+-], 1..64",
            )
        # Freeze a sorted copy: equality and hashing must not depend on insertion order.
        items = tuple(sorted(self.params.items()))
        object.__setattr__(self, "params", MappingProxyType(dict(items)))
        # Identity and hash once: specs are dict keys on the registry's read path.
        object.__setattr__(self, "_identity", (self.name, self.version, items))
        object.__setattr__(self, "_hash", hash(self._identity))  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OperatorSpec):
            return NotImplemented
        return self._identity == other._identity  # type: ignore[attr-defined, no-any-return]

    def __str__(self) -> str:
        text = f"{self.name}@{self.version}"
        if self.params:
            text += "{" + ",".join(f"{k}={v}" for k, v in self.params.items()) + "}"
        return text

    def __repr__(self) -> str:
        return f"OperatorSpec.parse({str(self)!r})"

    @staticmethod
    def parse(text: str) -> "OperatorSpec":
        m = _OPERATOR.fullmatch(text)
        _check(m is not None, f"invalid operator {text!r}: want name@version or name@version{{k=v,...}}")
        assert m is not None
        version = m["version"]
        _check(_VERSION.fullmatch(version) is not None, f"invalid operator version {version!r} in {text!r}")
        params: dict[str, str] = {}
        if m["params"]:
            for item in m["params"].split(","):
                name, sep, value = item.partition("=")
                _check(bool(sep), f"invalid param {item!r} in {text!r}: want k=v")
                _check(name not in params, f"duplicate param {name!r} in {text!r}")
                params[name] = value
        else:
            _check(m["params"] is None, f"empty braces in {text!r}: omit them when there are no params")
        return OperatorSpec(m["name"], int(version), params)


@dataclass(frozen=True)
class KernelKey:
    """(platform, arch, model, operator): the identity every kernel is served under."""

    platform: str
    arch: str
    model: str
    operator: OperatorSpec

    def __post_init__(self) -> None:
        _check(self.platform in PLATFORMS, f"invalid platform {self.platform!r}: want one of {', '.join(PLATFORMS)}")
        pattern = _ARCH_PATTERNS[self.platform]
        _check(
            bool(pattern.fullmatch(self.arch)),
            f"invalid arch {self.arch!r} for platform {self.platform!r}: want an exact generation "
            f"matching {pattern.pattern!r} (families such as 'hopper' or 'gfx9' are not archs)",
        )
        _check(
            self.model == ANY_MODEL or bool(_MODEL.fullmatch(self.model)),
            f"invalid model {self.model!r}: want '*' or [a-z0-9][a-z0-9._-]*, at most 64",
        )
        if not isinstance(self.operator, OperatorSpec):  # not _check: its message would format on every key
            raise ValueError(f"operator must be an OperatorSpec, got {self.operator!r}")
        text = f"{self.platform}/{self.arch}/{self.model}/{self.operator}"
        _check(len(text) <= MAX_KEY_LENGTH, f"key longer than {MAX_KEY_LENGTH} characters: {text[:64]!r}...")
        # The canonical text and its hash, once: the registry's read path asks for both per
        # key and lookup (not a field: equality and hashing stay on the four parts).
        object.__setattr__(self, "_text", text)

    def __str__(self) -> str:
        return self._text  # type: ignore[attr-defined, no-any-return]

    def __repr__(self) -> str:
        return f"KernelKey.parse({str(self)!r})"

    @staticmethod
    def parse(text: str) -> "KernelKey":
        _check(isinstance(text, str), f"key must be text, got {type(text).__name__}")
        _check(len(text) <= MAX_KEY_LENGTH, f"key longer than {MAX_KEY_LENGTH} characters: {text[:64]!r}...")
        parts = text.split("/", 3)
        _check(len(parts) == 4, f"invalid key {text!r}: want platform/arch/model/operator@version{{params}}")
        platform, arch, model, operator = parts
        return KernelKey(platform, arch, model, OperatorSpec.parse(operator))

    @functools.cached_property
    def key_id(self) -> str:
        """sha256 hex of the canonical text: the storage id."""
        return hashlib.sha256(self._text.encode()).hexdigest()  # type: ignore[attr-defined]

    def with_model(self, model: str) -> "KernelKey":
        return KernelKey(self.platform, self.arch, model, self.operator)
