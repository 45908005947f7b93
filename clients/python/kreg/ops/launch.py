"""The calling convention of an operator's kernels: configs, launches, argument types.

Part of an operator's interface, not of its generation: a serving host that never imports
the generator turns a served artifact back into launches with these (kreg.ops.loaded), and
the generator's templates build and verify kernels with the same ones. Nothing here imports
torch or triton.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Params = Mapping[str, str]
"""The key's compile-time specialization, e.g. {"dtype": "bf16", "D": "128"}."""

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _frozen(mapping: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True)
class Config:
    """One candidate of a template's search space: tunable constexprs plus launch options.

    A served artifact records the config it was built with (LaunchAbi.constexprs, num_warps,
    num_stages); kreg.ops.loaded rebuilds it from there to compute the launches' grids.
    """

    constexprs: Mapping[str, int]
    num_warps: int
    num_stages: int

    def __post_init__(self) -> None:
        # A sorted, read-only copy: configs are compared and hashed by value in candidate logs.
        object.__setattr__(self, "constexprs", _frozen(self.constexprs))

    def __hash__(self) -> int:
        return hash((tuple(self.constexprs.items()), self.num_warps, self.num_stages))

    def __reduce__(self) -> tuple[type[Config], tuple[dict[str, int], int, int]]:
        # Configs cross into the evaluator child; a mappingproxy does not pickle.
        return (Config, (dict(self.constexprs), self.num_warps, self.num_stages))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return (dict(self.constexprs), self.num_warps, self.num_stages) == (
            dict(other.constexprs),
            other.num_warps,
            other.num_stages,
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.constexprs.items()]
        return ",".join(parts + [f"num_warps={self.num_warps}", f"num_stages={self.num_stages}"])


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel launch; the artifact's launch ABI is derived from it.

    `args` are the runtime arguments in kernel-signature order (constexprs excluded).
    `constexprs` are the constexprs fixed by the specialization or the shape rather than by the
    search (e.g. MEAN for jagged_sum, BLOCK_F for the interaction); the config's tunables are
    added by the launcher, and the two sets must not overlap in a template's launches.
    """

    entry_point: str
    args: tuple[Any, ...]
    grid: tuple[int, ...]
    constexprs: Mapping[str, Any] = field(default_factory=dict)


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


_TRITON_TYPES = {
    "torch.float32": "fp32",
    "torch.float16": "fp16",
    "torch.bfloat16": "bf16",
    "torch.float64": "fp64",
    "torch.int64": "i64",
    "torch.int32": "i32",
    "torch.int16": "i16",
    "torch.int8": "i8",
    "torch.uint8": "u8",
    "torch.bool": "i1",
}


def triton_type(arg: Any) -> str:
    """The Triton type a runtime argument is compiled for: "*<elem>" for a tensor, "i32" for
    an int that fits 32 bits and "i64" for a wider one (Triton's own rule), "i1", "fp32"."""
    if hasattr(arg, "data_ptr"):
        return "*" + _TRITON_TYPES[str(arg.dtype)]
    if isinstance(arg, bool):
        return "i1"
    if isinstance(arg, int):
        return "i32" if INT32[0] <= arg <= INT32[1] else "i64"
    if isinstance(arg, float):
        return "fp32"
    raise TypeError(f"cannot pass {type(arg).__name__} to a kernel")
