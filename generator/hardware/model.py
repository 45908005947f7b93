"""The shape of one hardware record: what the generator may assume about an arch without
touching the device.

Kept free of triton and torch so that the knowledge base can be read (pruning, roofline
maths, retrieval for proposers) on any host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kreg.model import Target

# Dtype names used as peak_flops keys. Matrix dtypes (tf32 and below) are dense tensor-core /
# matrix-core peaks without 2:4 sparsity; "fp32" is the non-matrix (vector FMA) peak, the ceiling
# for element-wise and reduction kernels. A dtype the hardware has no fast path for is absent.
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


@dataclass(frozen=True)
class CompileTarget:
    """What Triton's GPUTarget is built from: arch as Triton spells it (90 for sm_90, "gfx942")."""

    backend: str
    arch: int | str
    warp_size: int


@dataclass(frozen=True)
class HardwareRecord:
    """Vendor-specified facts about one exact arch (one device as the runtime sees it).

    Numbers are spec-sheet peaks, not measurements: roofline fractions against them are upper
    bounds on efficiency. A value of 0 (or a missing peak_flops dtype) means the number is not a
    property of the arch — it depends on the host (see `notes`) and must be measured there.
    Register counts are 32-bit registers per SM / CU; memory sizes are bytes; peaks are per second.
    """

    platform: str
    arch: str
    name: str
    warp_size: int
    sm_count: int
    max_shared_memory_bytes: int
    registers_per_sm: int
    l2_bytes: int
    memory_bandwidth_bytes_s: float
    peak_flops: Mapping[str, float]
    triton_backend: str
    # None: no upstream Triton backend emits a binary for this arch (CPU runs the interpreter).
    compile_target: CompileTarget | None
    sources: tuple[str, ...]
    notes: str = ""

    @property
    def target(self) -> Target:
        """The artifact's target, as the registry matches it against a runtime."""
        return Target(backend=self.triton_backend, arch=self.arch, warp_size=self.warp_size)
