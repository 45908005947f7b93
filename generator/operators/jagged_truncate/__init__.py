"""jagged_truncate@1: keep the first or the last min(len_b, N) items of every row.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `keep` first|last (default first), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), row lengths uniform in [`len_min`, `len_max`],
`empty_every` k > 0 makes rows b % k == 0 empty, `N` the truncation length (a runtime
argument, default len_max), `L` (optional, for bytes_moved only).
Explicit length patterns: `inputs_from_lengths`.
Inputs: {"values": [L, D], "offsets": [B+1], "N": int}.
Outputs: {"values": [min(L, B*N), D], "offsets": [B+1] of the offsets' dtype}. The values
buffer is sized from shapes alone (the kept count is data): its first offsets[B] rows are
the kept items, the rest are written as 0. kreg.ops.jagged_truncate returns the exact slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS

from generator.operators.base import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    element_size,
    fixed_dim,
    float_tolerance,
    jagged_tile_configs,
    make_jagged_inputs,
)

if TYPE_CHECKING:
    import torch

NAME = "jagged_truncate"
VERSION = 1
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "keep": ("first", "last"), "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    values, offsets = make_jagged_inputs(_checked(params), dims, seed, device)
    return {"values": values, "offsets": offsets, "N": dims.get("N", dims.get("len_max", 32))}


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], D: int, N: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    values, offsets = make_jagged_inputs(_checked(params), {"D": D}, seed, device, lengths=lengths)
    return {"values": values, "offsets": offsets, "N": N}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty, one row longer than N, every other row empty, rows longer than N with
    N off a block boundary, N longer than every row, N 0 and 1, one item per row; widths
    below, at and past a block."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0, "N": 4},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37, "N": 20},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2, "N": 5},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129, "N": 1000},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1, "N": 8},
        {"B": 6, "D": width(20), "len_min": 0, "len_max": 12, "N": 1},
        {"B": 3, "D": width(8), "len_min": 1, "len_max": 5, "N": 0},
        {"B": 2, "D": width(24), "len_min": 100, "len_max": 140, "N": 65},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: 40 keys x B 1024 rows, lengths < 400, N 50-256; HSTU histories cut to
    4096 (here 256 users with up to 8192 events)."""
    _checked(params)
    width = int(params.get("D", 128))
    return [
        TuningShape({"B": 40 * 1024, "D": width, "len_min": 0, "len_max": 399, "N": 50}),
        TuningShape({"B": 40 * 1024, "D": width, "len_min": 0, "len_max": 399, "N": 256}),
        TuningShape({"B": 256, "D": width, "len_min": 0, "len_max": 8192, "N": 4096}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The exact reference, its values zero-padded to the buffer the plan allocates."""
    import torch

    from kreg.ops import reference as ref
    from kreg.ops.plans import truncated_capacity

    values, offsets = ref.jagged_truncate(
        inputs["values"], inputs["offsets"], max_len=inputs["N"], keep=params.get("keep", "first")
    )
    capacity = truncated_capacity(inputs["values"].shape[0], offsets.numel() - 1, inputs["N"])
    padded = torch.zeros(capacity, values.shape[1], dtype=values.dtype, device=values.device)
    padded[: values.shape[0]] = values
    return {"values": padded, "offsets": offsets}


def _expected_kept(dims: Dims) -> int:
    """Expected sum of min(len_b, N) under `jagged_lengths`' distribution."""
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    cut = dims.get("N", high)
    mean = sum(min(n, cut) for n in range(low, high + 1)) / (high - low + 1)
    every = dims.get("empty_every", 0)
    rows = dims["B"]
    nonempty = rows - (-(-rows // every) if every > 0 else 0)
    return round(nonempty * mean)


def bytes_moved(params: Params, dims: Dims) -> int:
    """Kept items read and written, offsets read and written (the scan reads them again)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    kept = _expected_kept(dims)
    return 2 * kept * width * value_bytes + 3 * (dims["B"] + 1) * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    return None


TEMPLATE = OperatorTemplate(
    name=NAME,
    version=VERSION,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    make_inputs=make_inputs,
    edge_cases=edge_cases,
    tuning_shapes=tuning_shapes,
    allocate_outputs=_PLAN.allocate_outputs,
    launches=_PLAN.launches,
    reference=reference,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=float_tolerance,
)
