"""dcn_lowrank_cross_backward: grad_x0, grad_V, grad_W and grad_bias of the low-rank cross
network x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l, recomputing the forward first.

Scratch outputs (not part of the result; generator/operators/dcn_lowrank_cross_backward/
kernel.py says what each holds): an intermediate the products read is kept as P planes of
the input dtype, hi and lo (P = 2 for fp16/bf16, 1 for fp32), the elementwise ones in fp32:
  xs [L-1, P, B, N] x_1..x_{L-1}   ys [L-1, B, N] y_0..y_{L-2}   xv [L, P, B, r]
  dy [P, B, N]   dxv [P, B, r]   g [B, N] (dL/dx_l)   x0_sum [B, N] (grad_x0's running sum)
  partial [ceil(B / 16), N] (column sums of dy per row block of the producing launch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params
from kreg.ops.plans import PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch

# The smallest BLOCK_M a config may have: `partial` has a row per BLOCK_M rows of the batch.
MIN_BLOCK_M = 16


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    x0, V = inputs["x0"], inputs["V"]
    layers, rank, width = V.shape
    batch = x0.shape[0]
    planes = 1 if x0.dtype == torch.float32 else 2

    def empty(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=x0.device)

    return {
        "grad_x0": torch.empty_like(x0, memory_format=torch.contiguous_format),
        "grad_V": torch.empty_like(V, memory_format=torch.contiguous_format),
        "grad_W": torch.empty_like(inputs["W"], memory_format=torch.contiguous_format),
        "grad_bias": torch.empty_like(inputs["bias"], memory_format=torch.contiguous_format),
        "xs": empty(max(layers - 1, 0), planes, batch, width, dtype=x0.dtype),
        "ys": empty(max(layers - 1, 0), batch, width),
        "xv": empty(layers, planes, batch, rank, dtype=x0.dtype),
        "dy": empty(planes, batch, width, dtype=x0.dtype),
        "dxv": empty(planes, batch, rank, dtype=x0.dtype),
        "g": empty(batch, width),
        "x0_sum": empty(batch, width),
        "partial": empty(-(-batch // MIN_BLOCK_M), width),
    }


def _blocks(n: int, block: int) -> int:
    return -(-n // block)


def launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """2 launches per layer recompute the forward (project, expand; the last layer's expand
    starts the backward), then 4 per layer, last layer first, compute the gradients (grad_w
    with grad_bias, dxv, grad_v, carry), in that order on one stream: 6 L launches, each a
    grouped 1-D grid over its product's output tiles. One entry point takes the same argument
    types and constexprs for every layer (a binary is built once per entry point); where the
    epilogue differs by layer, a runtime argument (stage, first) says how."""
    x0, V, W, bias, grad_out = inputs["x0"], inputs["V"], inputs["W"], inputs["bias"], inputs["grad_out"]
    out = outputs
    if x0.dim() != 2 or V.dim() != 3 or W.dim() != 3 or bias.dim() != 2:
        raise ValueError("dcn_lowrank_cross_backward wants x0 [B, N], V [L, r, N], W [L, N, r], bias [L, N]")
    layers, rank, width = V.shape
    batch = x0.shape[0]
    if layers < 1 or rank < 1:
        raise ValueError(
            f"dcn_lowrank_cross_backward needs at least one layer and rank 1, got {layers} layers, rank {rank}"
        )
    if tuple(grad_out.shape) != tuple(x0.shape):
        raise ValueError(f"grad_out {tuple(grad_out.shape)} is not x0's shape {tuple(x0.shape)}")
    checked = (x0, V, W, bias, grad_out, *out.values())
    if any(t.numel() > 0 and t.stride(-1) != 1 for t in checked):
        raise ValueError("dcn_lowrank_cross_backward needs unit stride along the last dim")
    scratch = ("xs", "ys", "xv", "dy", "dxv", "g", "x0_sum", "partial")
    if any(not out[name].is_contiguous() for name in scratch):
        raise ValueError("dcn_lowrank_cross_backward needs contiguous scratch outputs (allocate_outputs')")
    block_m, block_n = config.constexprs["BLOCK_M"], config.constexprs["BLOCK_N"]
    if block_m < MIN_BLOCK_M:
        raise ValueError(f"BLOCK_M must be at least {MIN_BLOCK_M}, got {block_m}")

    xs, ys, xv, dy, dxv = out["xs"], out["ys"], out["xv"], out["dy"], out["dxv"]
    g, x0_sum, partial = out["g"], out["x0_sum"], out["partial"]
    grad_V, grad_W, grad_bias = out["grad_V"], out["grad_W"], out["grad_bias"]
    planes = dy.shape[0]

    def hi_lo(t: Any) -> tuple[Any, Any]:  # [P, ...] -> (hi, lo); fp32: (the plane, the plane)
        return t[0], t[planes - 1]

    dy_hi, dy_lo = hi_lo(dy)
    dxv_hi, dxv_lo = hi_lo(dxv)
    tiles_bn = _blocks(batch, block_m) * _blocks(width, block_n)  # products of [B, N]
    tiles_br = _blocks(batch, block_m) * _blocks(rank, block_n)  # [B, r]
    tiles_nr = _blocks(width, block_m) * _blocks(rank, block_n)  # [N, r]
    tiles_rn = _blocks(rank, block_m) * _blocks(width, block_n)  # [r, N]
    partial_rows = _blocks(batch, block_m)
    dims = (batch, width, rank)
    grad_x0 = out["grad_x0"]

    def x_planes(layer: int) -> tuple[Any, Any]:
        return hi_lo(xs[layer - 1])

    result = []
    # Forward: xv_l = x_l V_lᵀ, then y_l and x_{l+1}; the last layer's expand starts the
    # backward instead (stage 2).
    for layer in range(layers):
        xv_hi, xv_lo = hi_lo(xv[layer])
        if layer == 0:
            args = (x0, V[0], xv_hi, xv_lo, *dims, x0.stride(0), V.stride(1))
            result.append(KernelLaunch("dcn_bwd_project_first_kernel", args, (tiles_br,)))
        else:
            args = (*x_planes(layer), V[layer], xv_hi, xv_lo, *dims, V.stride(1))
            result.append(KernelLaunch("dcn_bwd_project_kernel", args, (tiles_br,)))
        if layer == layers - 1:
            stage, x_l, f32, planes_out = 2, (x0, x0), x0_sum, (dy_hi, dy_lo)
        else:
            stage = 0 if layer == 0 else 1
            x_l = (x0, x0) if layer == 0 else x_planes(layer)
            f32, planes_out = ys[layer], x_planes(layer + 1)
        args = (
            x0, *x_l, xv_hi, xv_lo, W[layer], bias[layer], grad_out, f32, *planes_out, g, partial, *dims,
            x0.stride(0), W.stride(1), grad_out.stride(0), stage,
        )
        result.append(KernelLaunch("dcn_bwd_expand_kernel", args, (tiles_bn,)))
    # Backward, last layer first; g and dy hold layer l's on entry.
    for layer in reversed(range(layers)):
        xv_hi, xv_lo = hi_lo(xv[layer])
        args = (
            dy_hi, dy_lo, xv_hi, xv_lo, partial, grad_W[layer], grad_bias[layer], *dims,
            grad_W.stride(1), partial_rows,
        )
        result.append(KernelLaunch("dcn_bwd_grad_w_kernel", args, (tiles_nr,)))
        args = (dy_hi, dy_lo, W[layer], dxv_hi, dxv_lo, *dims, W.stride(1))
        result.append(KernelLaunch("dcn_bwd_dxv_kernel", args, (tiles_br,)))
        if layer == 0:
            args = (dxv_hi, dxv_lo, x0, grad_V[0], *dims, x0.stride(0), grad_V.stride(1))
            result.append(KernelLaunch("dcn_bwd_grad_v_first_kernel", args, (tiles_rn,)))
        else:
            args = (dxv_hi, dxv_lo, *x_planes(layer), grad_V[layer], *dims, grad_V.stride(1))
            result.append(KernelLaunch("dcn_bwd_grad_v_kernel", args, (tiles_rn,)))
        y_prev = ys[layer - 1] if layer > 0 else g  # unread for layer 0
        args = (
            dxv_hi, dxv_lo, V[layer], g, x0, y_prev, x0_sum, dy_hi, dy_lo, partial, grad_x0, *dims,
            V.stride(1), x0.stride(0), grad_x0.stride(0), int(layer == 0),
        )
        result.append(KernelLaunch("dcn_bwd_carry_kernel", args, (tiles_bn,)))
    return result


PLANS["dcn_lowrank_cross_backward"] = LaunchPlan(allocate_outputs, launches)
