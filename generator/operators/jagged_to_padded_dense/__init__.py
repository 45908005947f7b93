"""jagged_to_padded_dense@1: a jagged tensor padded to [B, N, D], rows longer than N truncated.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), row lengths uniform in [`len_min`, `len_max`],
`empty_every` k > 0 makes rows b % k == 0 empty, `N` the padded length (a runtime argument,
default len_max), `pad_milli` the padding value in thousandths (default -1500: -1.5, not 0,
so that a kernel writing zeros fails).
Inputs: {"values": [L, D], "offsets": [B+1], "N": int, "padding_value": float};
outputs: {"out": [B, N, D]} in the values dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
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

NAME = "jagged_to_padded_dense"
VERSION = 1
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    values, offsets = make_jagged_inputs(_checked(params), dims, seed, device)
    return {
        "values": values,
        "offsets": offsets,
        "N": dims.get("N", dims.get("len_max", 32)),
        "padding_value": dims.get("pad_milli", -1500) / 1000,
    }


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty, one row longer than N, every other row empty, N past every row, one
    item per row, N 0 and 1, rows longer than N off a block boundary, padding 0."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0, "N": 4},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37, "N": 20},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2, "N": 5},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129, "N": 140},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1, "N": 8},
        {"B": 6, "D": width(20), "len_min": 0, "len_max": 12, "N": 1, "pad_milli": 0},
        {"B": 3, "D": width(8), "len_min": 1, "len_max": 5, "N": 0},
        {"B": 2, "D": width(24), "len_min": 100, "len_max": 140, "N": 65, "pad_milli": 250},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 512, N 4096, D 512 (bf16); then a shorter N that truncates."""
    _checked(params)
    width = int(params.get("D", 512))
    return [
        TuningShape({"B": 512, "D": width, "len_min": 0, "len_max": 4096, "N": 4096, "pad_milli": 0}),
        TuningShape({"B": 512, "D": width, "len_min": 0, "len_max": 1536, "N": 1024, "pad_milli": 0}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    out = ref.jagged_to_padded_dense(
        inputs["values"], inputs["offsets"], max_len=inputs["N"], padding_value=inputs["padding_value"]
    )
    return {"out": out}


def expected_kept(dims: Dims) -> int:
    """Expected sum of min(len_b, N) under `jagged_lengths`' distribution."""
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    cut = dims.get("N", high)
    mean = sum(min(n, cut) for n in range(low, high + 1)) / (high - low + 1)
    every, rows = dims.get("empty_every", 0), dims["B"]
    nonempty = rows - (-(-rows // every) if every > 0 else 0)
    return round(nonempty * mean)


def bytes_moved(params: Params, dims: Dims) -> int:
    """The kept items read once, the dense output written once, offsets read once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    rows, width = dims["B"], fixed_dim(params, dims, "D")
    dense = rows * dims.get("N", dims.get("len_max", 32))
    return (expected_kept(dims) + dense) * width * value_bytes + (rows + 1) * index_bytes


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
