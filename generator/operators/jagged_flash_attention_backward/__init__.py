"""jagged_flash_attention_backward@1: the gradient of jagged_flash_attention@1 (kreg.ops.backward
documents the backward operators' inputs and outputs).

Key params: jagged_flash_attention's (`dtype`, `index_dtype`, `D`). Dims, edge cases and tuning
shapes: jagged_flash_attention's. Inputs: its {"q", "k", "v": [L, D], "offsets": [B+1],
"max_N": int} plus {"grad_out": [L, D]}; outputs: {"grad_q", "grad_k", "grad_v": [L, D]} (zero
for items past N in their row) and the fp32 scratch {"lse", "delta": [L]} between the two
launches (kernel.py has the algorithm).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from generator.operators import jagged_flash_attention
from generator.operators.backward import backward_template
from generator.operators.base import (
    Config,
    Dims,
    Params,
    config_grid,
    element_size,
    expected_total_length,
    fixed_dim,
    float_tolerance,
)

if TYPE_CHECKING:
    import torch

# Tried first: 64 owned rows (queries for dQ, keys for dK/dV) against 32 walked per step, 4
# warps, 3 stages: two 64 x D fp32 accumulators take 64 registers a thread at D = 128 and the
# three stages' operand tiles (2 x 32 x 128 half each) 48 KiB, so it compiles on every target.
# The fastest of ten configs timed on an H100 at every tuning shape (B 1024, N 128/256/512,
# D 128, bf16: 0.21 / 0.52 / 1.72 ms; at N 256 the nine others took 9-106% longer, 2 stages
# 16%).
_DEFAULT = Config({"BLOCK_OWN": 64, "BLOCK_STEP": 32}, 4, 3)


def config_space(params: Params) -> list[Config]:
    """BLOCK_OWN rows whose gradient a program accumulates (two fp32 BLOCK_OWN x BLOCK_D tiles:
    dQ and the forward's output in launch 1, dK and dV in launch 2) x BLOCK_STEP rows walked per
    step (no more than it owns, as in flash attention 2's backward) x warps x stages. Score
    tiles of 512-8192 elements, 4-64 per thread of a 32-wide warp; the two accumulators at most
    128 registers a thread at the key's width (128 when the key leaves D open). 36 configs at
    D = 128, 45 at D <= 64."""
    jagged_flash_attention.config_space(params)  # the forward's own checks
    width = max(16, 1 << (int(params["D"]) - 1).bit_length()) if "D" in params else 128

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        threads = 32 * warps
        tile = c["BLOCK_OWN"] * c["BLOCK_STEP"]
        registers = 2 * c["BLOCK_OWN"] * width // threads
        fits = 512 <= tile <= 8192 and 4 <= tile // threads <= 64 and registers <= 128
        return fits and c["BLOCK_STEP"] <= c["BLOCK_OWN"]

    grid = config_grid(
        {"BLOCK_OWN": (32, 64, 128), "BLOCK_STEP": (16, 32, 64, 128)},
        num_warps=(4, 8),
        num_stages=(1, 2, 3),
        keep=keep,
    )
    # The default first where the key's width keeps it (a wide head may not).
    return sorted(grid, key=lambda c: c != _DEFAULT)


def bytes_moved(params: Params, dims: Dims) -> int:
    """Q, K, V and grad_out read once, grad_q, grad_k, grad_v written once, offsets read once
    (the lse / Delta scratch is the kernels' choice, not the minimum)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    return 7 * expected_total_length(dims) * width * value_bytes + (dims["B"] + 1) * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    """The backward's own products over each row's n x n scores (n = min(len, N)): S = Q Kᵀ
    recomputed, dV = Pᵀ dO, dP = dO Vᵀ, dQ = dS K, dK = dSᵀ Q, 2 n^2 D each (flash attention's
    2.5x the forward). The kernels also recompute the forward's output for Delta and S once
    more, which this count leaves out."""
    width, max_len = fixed_dim(params, dims, "D"), dims["N"]
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    mean_square = sum(min(length, max_len) ** 2 for length in range(low, high + 1)) / (high - low + 1)
    return max(1, round(10 * dims["B"] * mean_square * width))


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """float_tolerance for fp32 (IEEE dots: measured within 0.1 of it, N up to 512); for fp16
    and bf16 the forward's attention tolerance, for the forward's reason twice over: the
    kernels feed P (to dV = Pᵀ dO and to the output behind Delta) and dS (to dQ = dS K and
    dK = dSᵀ Q) to the tensor cores in the input dtype, one rounding of every term (up to
    2^-8 relative in bf16, 2^-11 in fp16) that the fp32 oracle does not make. The terms of a
    dS row are peaked (softmax weights) and sum to zero, so their rounding errors add up to a
    share of the gradient's scale rather than of each element: up to ~1.5% of grad_q's and
    grad_k's rms in bf16 (0.5% in fp16), i.e. several ulps at elements near zero. Measured
    worst error over this tolerance: 0.36 bf16, 0.16 fp16 (H100, tuning shapes and edge
    cases), 0.45 / 0.18 interpreted over 12 seeds. grad_v is far smaller than the others
    (the test's normwise check covers it on its own scale)."""
    import torch

    if dtype == torch.float32:
        return float_tolerance(dtype)
    return jagged_flash_attention.attention_tolerance(dtype)


TEMPLATE = backward_template(
    jagged_flash_attention.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=tolerance,
)
