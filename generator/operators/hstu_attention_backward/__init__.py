"""hstu_attention_backward@1: the gradient of hstu_attention@1 (kreg.ops.backward documents the
backward operators' inputs and outputs): per jagged row and head, with S = alpha Q Kᵀ and
A = silu(S) / N * mask, dV = Aᵀ dO, dS = (dO Vᵀ) * mask / N * silu'(S) * alpha, dQ = dS K,
dK = dSᵀ Q; items past N (truncated away by the forward) get zero gradients.

Key params: as hstu_attention's (`dtype` fp32|fp16|bf16, `index_dtype` int32|int64, `D`, `H`).
Dims, edge cases and tuning shapes: hstu_attention's. Inputs: hstu_attention's ({"q", "k",
"v": [L, H, D], "offsets": [B+1], "num_targets": int64 [B], "max_N": int, "alpha": float or
None}) plus {"grad_out": [L, H, D]}; outputs: {"grad_q", "grad_k", "grad_v": [L, H, D]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kreg.ops.launch import next_power_of_2

from generator.operators import hstu_attention
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


def config_space(params: Params) -> list[Config]:
    """BLOCK_OUTER items held per program (keys in the dK/dV kernel, queries in the dQ kernel)
    x BLOCK_INNER <= BLOCK_OUTER items per step of its loop (the loops split where the mask
    ends, at whole held blocks), the head dim whole: score tiles of 256-8192
    elements, 4-64 per thread of a 32-wide warp, and the held block's fp32 accumulators
    (dK and dV: 2 x BLOCK_OUTER x D) at most 128 registers a thread. 36 configs at D 128.
    The first (the default) is 64 held x 32 per step, 4 warps, 2 stages: a Hopper warpgroup's
    64-row MMA tile, and registers to spare for the held tiles at D 128 (chosen by that
    arithmetic, not yet timed on a GPU)."""
    hstu_attention.config_space(params)  # the forward's own checks
    width = max(16, next_power_of_2(int(params.get("D", 128))))

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        outer, inner = c["BLOCK_OUTER"], c["BLOCK_INNER"]
        tile, threads = outer * inner, 32 * warps
        return (
            inner <= outer
            and 256 <= tile <= 8192
            and 4 <= tile // threads <= 64
            and 2 * outer * width // threads <= 128
        )

    configs = config_grid(
        {"BLOCK_OUTER": (32, 64, 128), "BLOCK_INNER": (16, 32, 64, 128)},
        num_warps=(4, 8),
        num_stages=(1, 2, 3),
        keep=keep,
    )
    default = Config({"BLOCK_OUTER": 64, "BLOCK_INNER": 32}, 4, 2)
    return sorted(configs, key=lambda c: c != default)  # stable: the rest keep their order


def bytes_moved(params: Params, dims: Dims) -> int:
    """Q, K, V and grad_out read once, the three gradients written once, offsets and
    num_targets read once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    heads, width = fixed_dim(params, dims, "H"), fixed_dim(params, dims, "D")
    return 7 * expected_total_length(dims) * heads * width * value_bytes + (dims["B"] + 1) * (index_bytes + 8)


def flops(params: Params, dims: Dims) -> int | None:
    """The causal half of the five products a backward needs (S, dP = dO Vᵀ, dV, dK, dQ),
    each about n^2 D / 2 multiply-adds per row and head: 5/2 of the forward's two. (The
    kernels run seven: the dQ kernel recomputes S and dP rather than share them.)"""
    forward = hstu_attention.flops(params, dims)
    return None if forward is None else forward * 5 // 2


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol). rtol is float_tolerance's: a gradient is rounded to its dtype once, and
    the oracle's rounding of a slightly different fp32 value may land one ulp away.

    atol covers what the kernels add: fp16/bf16 runs feed A (to dV) and dS (to dQ and dK) to
    tl.dot in the input dtype, as flash attention's backward does, so each term of those sums
    carries one rounding, relative error up to 2^-8 (bf16) or 2^-11 (fp16), random in sign;
    a sum then errs by about that fraction of its typical size (not of its own value, which
    may cancel to near zero): rms 0.0011 (bf16) and 0.00014 (fp16) on dQ and dK, which are
    of order 1 at every N (rms 0.43), far less on dV (rms 0.026 at N 256, 0.0065 at N 4096).
    Emulating the kernels' roundings in torch against this oracle at the tuning shapes
    (N 256, 1024, 4096; D 128; 0.4-4 M elements each) needed atol up to 0.0046 (bf16, about
    4 standard deviations) and 0.00054 (fp16) at these rtols; a 60 M-element production
    batch reaches about 6 standard deviations (0.0066, 0.0008), and the table keeps 2.3-2.5x
    over that. That is still tighter than the forward's attention_tolerance (3e-2 for bf16),
    which would let dV be wrong by 5 times its rms. fp32 runs IEEE dots (no intermediate
    rounding): the oracle itself is off by about 1e-6 from float64 there, so
    float_tolerance holds with a 10x margin."""
    import torch

    table = {
        torch.float32: (1e-5, 1e-5),
        torch.float16: (2e-3, 2e-3),
        torch.bfloat16: (1.6e-2, 1.5e-2),
    }
    return table.get(dtype, float_tolerance(dtype))


TEMPLATE = backward_template(
    hstu_attention.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=tolerance,
)
