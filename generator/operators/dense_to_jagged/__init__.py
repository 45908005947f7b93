"""dense_to_jagged@1: the items of a padded [B, N, D] tensor back into jagged values.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), `N` the dense length (default len_max), row
lengths uniform in [`len_min`, `len_max`] (rows longer than N get 0 past N, as fbgemm's),
`empty_every` k > 0 makes rows b % k == 0 empty.
Inputs: {"dense": [B, N, D], "offsets": [B+1], "L": offsets[-1] (fbgemm's total_L: sizes
the output without a device sync)}; outputs: {"out": [L, D]} in the dense dtype.
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
    expected_total_length,
    fixed_dim,
    float_tolerance,
    jagged_lengths,
    jagged_params,
    jagged_tile_configs,
)
from generator.operators.jagged_to_padded_dense import expected_kept

if TYPE_CHECKING:
    import torch

NAME = "dense_to_jagged"
VERSION = 1
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """Drawn on the CPU and then moved, so that a seed gives the same inputs on every device."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    dtype, index_dtype = jagged_params(_checked(params))
    width = fixed_dim(params, dims, "D")
    lengths = jagged_lengths(dims, generator)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    max_len = dims.get("N", dims.get("len_max", 32))
    dense = torch.randn(lengths.numel(), max_len, width, generator=generator, dtype=torch.float32)
    return {
        "dense": dense.to(dtype).to(device),
        "offsets": offsets.to(index_dtype).to(device),
        "L": int(offsets[-1]),
    }


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty, one row longer than N, every other row empty, rows shorter than N,
    one item per row, N 1 and 0 (every item past the dense tensor: 0), N off a block."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0, "N": 4},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37, "N": 20},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2, "N": 9},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129, "N": 140},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1, "N": 8},
        {"B": 6, "D": width(20), "len_min": 0, "len_max": 12, "N": 1},
        {"B": 3, "D": width(8), "len_min": 1, "len_max": 5, "N": 0},
        {"B": 2, "D": width(24), "len_min": 100, "len_max": 140, "N": 65},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 512, N 4096, D 512 (bf16); then a shorter N."""
    _checked(params)
    width = int(params.get("D", 512))
    return [
        TuningShape({"B": 512, "D": width, "len_min": 0, "len_max": 4096, "N": 4096}),
        TuningShape({"B": 512, "D": width, "len_min": 0, "len_max": 1024, "N": 1024}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.dense_to_jagged(inputs["dense"], inputs["offsets"], total_L=inputs["L"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    """Dense items inside a row read once, every jagged item written once, offsets read."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    return (expected_kept(dims) + expected_total_length(dims)) * width * value_bytes + (dims["B"] + 1) * index_bytes


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
