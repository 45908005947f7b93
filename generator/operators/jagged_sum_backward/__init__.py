"""jagged_sum_backward@1: the gradient of jagged_sum@1 (kreg.ops.backward documents the
backward operators' inputs and outputs).

Key params: as jagged_sum's, less `gather` (the embedding-bag variant's gradient scatters
into its table, and keeps the reference's backward). Dims, edge cases and tuning shapes:
jagged_sum's. Inputs: jagged_sum's plus {"grad_out": [B, D]}; outputs: {"grad_values": [L, D]}
and, when `weighted=1`, {"grad_weights": [L]}.
"""

from __future__ import annotations

from pathlib import Path

from generator.operators import jagged_sum
from generator.operators.backward import backward_template
from generator.operators.base import Config, Dims, Params, element_size, expected_total_length, fixed_dim, jagged_tile_configs


def _checked(params: Params) -> Params:
    if params.get("gather") == "1":
        raise ValueError("param gather=1: the embedding-bag variant has no backward kernel (its reference's serves it)")
    jagged_sum.config_space(params)  # the forward's own checks
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def bytes_moved(params: Params, dims: Dims) -> int:
    """grad_out read once, grad_values written once; weighted, values read and the weights'
    gradient written too (and the weights read)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    rows, width, items = dims["B"], fixed_dim(params, dims, "D"), expected_total_length(dims)
    moved = (items + rows) * width * value_bytes + (rows + 1) * index_bytes
    if params.get("weighted") == "1":
        moved += items * width * value_bytes + 2 * items * value_bytes
    return moved


def flops(params: Params, dims: Dims) -> int | None:
    factor = 3 if params.get("weighted") == "1" else 1
    return factor * expected_total_length(dims) * fixed_dim(params, dims, "D")


TEMPLATE = backward_template(
    jagged_sum.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
)
