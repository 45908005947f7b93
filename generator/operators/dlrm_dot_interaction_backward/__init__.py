"""dlrm_dot_interaction_backward@1: the gradient of dlrm_dot_interaction@1 (kreg.ops.backward
documents the backward operators' inputs and outputs).

Key params: dlrm_dot_interaction's (`dtype` fp32|fp16|bf16, optional `D` and `F`). Dims, edge
cases and tuning shapes: dlrm_dot_interaction's (`B` samples, `F` sparse features, `D` width).
Inputs: {"dense": [B, D], "sparse": [B, F, D], "grad_out": [B, D + (F+1)F/2]}; outputs:
{"grad_dense": [B, D], "grad_sparse": [B, F, D]}. With T = cat(dense[:, None], sparse) and
S[b] the symmetric matrix of the pair gradients (zero diagonal), dT = S T, grad_dense =
grad_out[:, :D] + dT[:, 0] and grad_sparse = dT[:, 1:].
"""

from __future__ import annotations

from pathlib import Path

from kreg.ops.plans import MIN_DOT, output_width

from generator.operators import dlrm_dot_interaction
from generator.operators.backward import backward_template
from generator.operators.base import (
    Config,
    Dims,
    Params,
    config_grid,
    element_size,
    fixed_dim,
    next_power_of_2,
)


def config_space(params: Params) -> list[Config]:
    """BLOCK_D (the D slice per tl.dot) x samples per program x warps x stages; with D fixed
    by the key, slices wider than D collapse to one. 48 configs unconstrained or for D=128."""
    dlrm_dot_interaction.config_space(params)  # the forward's own checks
    widest = max(MIN_DOT, next_power_of_2(int(params["D"]))) if "D" in params else 128
    return config_grid(
        {"BLOCK_D": sorted({min(b, widest) for b in (32, 64, 128)}), "ROWS_PER_PROGRAM": (1, 2, 4, 8)},
        num_warps=(4, 8),
        num_stages=(1, 2),
    )


def bytes_moved(params: Params, dims: Dims) -> int:
    """grad_out read once, T (dense and sparse) read once, grad_dense and grad_sparse written
    once."""
    batch, features, width = dims["B"], fixed_dim(params, dims, "F"), fixed_dim(params, dims, "D")
    moved = batch * (2 * (features + 1) * width + output_width(features, width))
    return moved * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """The useful products only: each of the (F+1)F/2 pairs adds its gradient times one row
    to the other row's gradient and back (2 multiply-adds of length D), plus the dense add."""
    batch, features, width = dims["B"], fixed_dim(params, dims, "F"), fixed_dim(params, dims, "D")
    return batch * (2 * (features + 1) * features * width + width)


TEMPLATE = backward_template(
    dlrm_dot_interaction.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
)
