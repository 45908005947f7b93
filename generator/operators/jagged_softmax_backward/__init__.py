"""jagged_softmax_backward@1: the gradient of jagged_softmax@1 (kreg.ops.backward documents
the backward operators' inputs and outputs).

Key params: as jagged_softmax's (`dtype` fp32|fp16|bf16, `index_dtype` int32|int64, `D`).
Dims, edge cases and tuning shapes: jagged_softmax's (`B`, `D`, `len_min`, `len_max`,
`empty_every`, `max_L`, `L`). Inputs: jagged_softmax's plus {"grad_out": [L, D]}, i.e.
{"values": [L, D], "offsets": [B+1], "max_L": int, "grad_out": [L, D]}; outputs:
{"grad_values": [L, D]}: within each row's first max_L items, per column,
y * (grad_out - sum_over_row(grad_out * y)) with y = softmax(values) recomputed by the
kernel; 0 for items at position >= max_L in their row.
"""

from __future__ import annotations

from pathlib import Path

from generator.operators import jagged_softmax
from generator.operators.backward import backward_template
from generator.operators.base import (
    Config,
    Dims,
    Params,
    config_grid,
    element_size,
    expected_total_length,
    fixed_dim,
)


def config_space(params: Params) -> list[Config]:
    """BLOCK_L x BLOCK_D tiles of 1k-8k elements (the forward's range: BLOCK_L 128 keeps the
    short-row batches' rows in one tile), but 8-32 elements per thread and per tile rather
    than the forward's 16-64, since the kernel holds x, g and their product in registers
    at once. Column blocks wider than a key-fixed D are dropped. 58 configs unconstrained,
    46 for D=128."""
    jagged_softmax.config_space(params)  # the forward's own checks
    widest = max(32, 1 << (int(params["D"]) - 1).bit_length()) if "D" in params else 256

    def keep(c: dict[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_L"] * c["BLOCK_D"]
        return c["BLOCK_D"] <= widest and 1024 <= tile <= 8192 and 8 <= tile // (32 * warps) <= 32

    return config_grid(
        {"BLOCK_L": (8, 16, 32, 64, 128), "BLOCK_D": (32, 64, 128, 256)},
        num_warps=(2, 4, 8),
        num_stages=(1, 3),
        keep=keep,
    )


def _kept_fraction(dims: Dims) -> float:
    """E[min(len, max_L)] / E[len] for lengths uniform in [len_min, len_max] (continuous
    approximation): the share of items inside the truncation."""
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    cut = dims.get("max_L", high)
    mean = (low + high) / 2
    if mean <= 0 or cut >= high:
        return 1.0
    if cut <= low:
        return cut / mean
    kept = ((cut - low) * (cut + low) / 2 + (high - cut) * cut) / (high - low)
    return kept / mean


def bytes_moved(params: Params, dims: Dims) -> int:
    """values and grad_out read once for kept items (items past max_L need neither),
    grad_values written once for every item, offsets read once (the kernel reads a row that
    spans several tiles twice; the roofline counts the minimum)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    items = expected_total_length(dims)
    kept = round(items * _kept_fraction(dims))
    return (2 * kept + items) * width * value_bytes + (dims["B"] + 1) * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    return None  # memory-bound: an exp and a handful of multiply-adds per item


TEMPLATE = backward_template(
    jagged_softmax.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
)
