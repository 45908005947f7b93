"""dcn_lowrank_cross_backward@1: the gradient of dcn_lowrank_cross@1 (kreg.ops.backward
documents the backward operators' inputs and outputs).

Key params: dcn_lowrank_cross's (`dtype` fp32|fp16|bf16, optional `N`, `r`, `layers`).
Dims, edge cases and tuning shapes: dcn_lowrank_cross's (`B`, `N`, `r`, `layers`).
Inputs: {"x0": [B, N], "V": [L, r, N], "W": [L, N, r], "bias": [L, N], "grad_out": [B, N]};
outputs: {"grad_x0": [B, N], "grad_V": [L, r, N], "grad_W": [L, N, r], "grad_bias": [L, N]}
in the input dtype, and the scratch kreg.ops.backward.dcn lists (the recomputed forward,
the running gradient, split operands; not part of the result).

The forward is recomputed (no saved state); kernel.py describes the 6 products per layer
and why fp16/bf16 intermediates enter them as hi + lo planes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from generator.operators import dcn_lowrank_cross
from generator.operators.backward import backward_template
from generator.operators.base import Config, Dims, Params, config_grid, element_size, fixed_dim

if TYPE_CHECKING:
    import torch


def _checked(params: Params) -> Params:
    dcn_lowrank_cross.config_space(params)  # the forward's own checks
    return params


# Tried first, and the one config an interpreted (untimed) job verifies: a 64 x 64 tile in
# 32-deep, 2-stage steps keeps the four operand tiles of a split product (~32 KiB) inside
# every target's shared memory (gfx90a's 64 KiB LDS included).
_DEFAULT = Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, 4, 2)


def config_space(params: Params) -> list[Config]:
    """One output tile [BLOCK_M, BLOCK_N] and reduction step BLOCK_K for all six products
    (rows of the batch, or of N / r for the weight gradients), x warps x stages. The fp32
    accumulator stays at 16-128 registers per thread (16: 64 x 64 over 8 warps, the one tile
    that a 1-lane "warp" of the CPU interpreter's record does not prune as spilling); a
    stage's operand tiles (hi and lo of both operands in a half dtype, one fp32 plane
    otherwise: the same bytes) stay within 200 KiB over all stages. 58 configs for every
    dtype."""
    _checked(params)
    size = element_size(params.get("dtype", "fp32"))
    planes = 1 if size == 4 else 2

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        accumulator = c["BLOCK_M"] * c["BLOCK_N"] // (32 * warps)
        stage = planes * (c["BLOCK_M"] + c["BLOCK_N"]) * c["BLOCK_K"] * size
        return 16 <= accumulator <= 128 and stage * stages <= 200 * 1024

    grid = config_grid(
        {"BLOCK_M": (64, 128), "BLOCK_N": (64, 128, 256), "BLOCK_K": (32, 64)},
        num_warps=(4, 8),
        num_stages=(2, 3, 4),
        keep=keep,
    )
    return [_DEFAULT, *(c for c in grid if c != _DEFAULT)]


def _dims(params: Params, dims: Dims) -> tuple[int, int, int, int]:
    return (
        dims["B"],
        fixed_dim(params, dims, "N"),
        fixed_dim(params, dims, "r"),
        fixed_dim(params, dims, "layers"),
    )


def bytes_moved(params: Params, dims: Dims) -> int:
    """x0 and grad_out read and grad_x0 written once, each layer's V, W and bias read and
    their gradients written once (the minimum: the kernels also write and reread the
    recomputed forward and the running gradient, L x [B, N] each)."""
    batch, width, rank, layers = _dims(params, dims)
    size = element_size(params.get("dtype", "fp32"))
    return (3 * batch * width + layers * (4 * rank * width + 2 * width)) * size


def flops(params: Params, dims: Dims) -> int | None:
    """Six products of 2 B N r flops per layer (two recompute the forward), plus ~10
    elementwise flops per element of [B, N] and layer. Products with a split fp16/bf16
    operand run 2-3 tensor-core passes; those extra passes are not counted."""
    batch, width, rank, layers = _dims(params, dims)
    return layers * batch * width * (12 * rank + 10)


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """float_tolerance's rtol (each gradient is rounded to its dtype once, as the oracle's
    is), with an atol sized by the weight gradients' scale rather than by one rounding.

    grad_V, grad_W and grad_bias are sums over the batch of terms of either sign, so their
    elements are of order sqrt(B) (rms 74 / 57 / 51 at the first tuning shape, B 2048; 208 /
    160 / 143 at B 16384), and the elements near zero are the cancellation of such sums: any
    difference in how the sums round (the oracle's float32 GEMMs against the kernel's tiles)
    is an error of a fixed fraction of that rms, not of the element. Emulated in PyTorch on the
    CPU with the kernel's rounding points (hi/lo planes, the passes of each product; for fp32
    the accumulation in 32-deep steps) against the oracle at N 3456, r 512, 3 layers, the
    atol needed at these rtols over the ~5.3 M weight-gradient elements was:
      fp32 (plain fp32 products, accumulation order alone): 2.0e-4 at B 2048, ~2.7e-6 x rms;
      fp16 (split operands, ~22 significant bits): 1.6e-4 at B 2048, ~2.2e-6 x rms;
      bf16 (split operands, ~16 significant bits, the lo x lo pass left out): 1.1e-3 at
        B 2048 and 3.9e-3 at B 16384, ~1.9e-5 x rms (grad_V the worst).
    The atols below are about twice what B 16384 needs (measured for bf16, scaled by the rms
    for fp32 and fp16); grad_x0 (rms ~1.8, no batch sum) needed < 3e-5 in every dtype. Not
    yet measured on a GPU. With single bf16 operands instead of the split, the bf16 error is
    ~1.7e-2 x rms (atol 1.3 at B 2048, 3.5 at B 16384): the reason intermediates are split."""
    import torch

    return {
        torch.float32: (1e-5, 1.5e-3),
        torch.float16: (2e-3, 1e-3),
        torch.bfloat16: (1.6e-2, 8e-3),
    }.get(dtype, (1e-9, 1e-12))


TEMPLATE = backward_template(
    dcn_lowrank_cross.TEMPLATE,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=tolerance,
)
