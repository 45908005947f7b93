"""jagged_sum@1: pooling of a jagged tensor, out[b] = sum (or mean) of row b's items.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `mean` 0|1 (default 0), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), row lengths uniform in [`len_min`, `len_max`],
`empty_every` k > 0 makes rows b % k == 0 empty, `L` (optional, for bytes_moved only).
Explicit length patterns: `inputs_from_lengths`.
Inputs: {"values": [L, D], "offsets": [B+1]}; outputs: {"out": [B, D]} in the values dtype.
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

NAME = "jagged_sum"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "mean": ("0", "1"), "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    values, offsets = make_jagged_inputs(_checked(params), dims, seed, device)
    return {"values": values, "offsets": offsets}


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], D: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    values, offsets = make_jagged_inputs(_checked(params), {"D": D}, seed, device, lengths=lengths)
    return {"values": values, "offsets": offsets}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty (L = 0), one row, every other row empty, lengths one past a power of two
    (never a multiple of BLOCK_L), one item per row; widths below, at and past a block."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: T 26-32 features, D 128, bags 20-100, B 512-8192; rows = T x B bags.
    The first is the shape the peers were timed at (B 2048, ~101k items)."""
    _checked(params)
    width = int(params.get("D", 128))
    return [
        TuningShape({"B": 2048, "D": width, "len_min": 0, "len_max": 100}),
        TuningShape({"B": 26 * 512, "D": width, "len_min": 0, "len_max": 40}),
        TuningShape({"B": 26 * 2048, "D": width, "len_min": 0, "len_max": 40}),
        TuningShape({"B": 32 * 512, "D": width, "len_min": 0, "len_max": 200}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.jagged_sum(inputs["values"], inputs["offsets"], mean=params.get("mean", "0") == "1")}


def bytes_moved(params: Params, dims: Dims) -> int:
    """Each item read once, offsets read once, the output written once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    rows, width = dims["B"], fixed_dim(params, dims, "D")
    return (expected_total_length(dims) + rows) * width * value_bytes + (rows + 1) * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    return expected_total_length(dims) * fixed_dim(params, dims, "D")


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
