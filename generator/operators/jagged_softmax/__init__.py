"""jagged_softmax@1: softmax over each row's items, per column, rows truncated to max_L.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), row lengths uniform in [`len_min`, `len_max`],
`empty_every` k > 0 makes rows b % k == 0 empty, `max_L` the truncation (a runtime argument,
default len_max: no truncation), `L` (optional, for bytes_moved only).
Explicit length patterns: `inputs_from_lengths`.
Inputs: {"values": [L, D], "offsets": [B+1], "max_L": int}; outputs: {"out": [L, D]}, 0 for
items at position >= max_L in their row (fbgemm leaves those unwritten; see the reference).
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
    expected_total_length,
    fixed_dim,
    float_tolerance,
    jagged_tile_configs,
    make_jagged_inputs,
)

if TYPE_CHECKING:
    import torch

NAME = "jagged_softmax"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "D": None}
# Spread of the values: wide enough that an exp without the max subtraction would overflow
# fp16 (exp(11.1) > 65504), so a kernel that skips it fails.
_SCALE = 4.0


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    values, offsets = make_jagged_inputs(_checked(params), dims, seed, device, scale=_SCALE)
    return {"values": values, "offsets": offsets, "max_L": dims.get("max_L", dims.get("len_max", 32))}


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], D: int, max_L: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    values, offsets = make_jagged_inputs(
        _checked(params), {"D": D}, seed, device, lengths=lengths, scale=_SCALE
    )
    return {"values": values, "offsets": offsets, "max_L": max_L}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """Empty rows, one row, truncation (max_L 0, 1, off a block boundary, longer than every
    row, past a split chunk), lengths one past a power of two, one item per row; widths below,
    at and past a block."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0, "max_L": 4},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37, "max_L": 37},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2, "max_L": 5},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129, "max_L": 1000},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1, "max_L": 8},
        {"B": 4, "D": width(20), "len_min": 0, "len_max": 12, "max_L": 1},
        {"B": 3, "D": width(8), "len_min": 1, "len_max": 5, "max_L": 0},
        {"B": 2, "D": width(24), "len_min": 100, "len_max": 100, "max_L": 65},
        # Truncated past one split chunk (kreg.ops.plans.SOFTMAX_SPLIT_ITEMS): the chunked
        # kernels, with rows shorter than one chunk, ending mid-chunk, and past max_L.
        {"B": 4, "D": width(6), "len_min": 0, "len_max": 1300, "max_L": 1100},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """The peers' shape (B 2048, ~101k items, D 128) and tritonbench's long rows, 1k-18k."""
    _checked(params)
    width = int(params.get("D", 128))
    return [
        TuningShape({"B": 2048, "D": width, "len_min": 0, "len_max": 100, "max_L": 100}),
        TuningShape({"B": 512, "D": width, "len_min": 0, "len_max": 1024, "max_L": 1024}),
        TuningShape({"B": 128, "D": width, "len_min": 0, "len_max": 18000, "max_L": 16384}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.jagged_softmax(inputs["values"], inputs["offsets"], max_len=inputs["max_L"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    """Each item read once and written once, offsets read once (the kernel reads kept items
    twice; the roofline counts the minimum)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    return 2 * expected_total_length(dims) * width * value_bytes + (dims["B"] + 1) * index_bytes


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
