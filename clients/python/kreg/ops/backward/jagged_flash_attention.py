"""jagged_flash_attention_backward: grad_q, grad_k, grad_v of softmax(Q Kᵀ) V / N per jagged
row truncated to N items (zero for items past N), in two launches with fp32 scratch between
them: the per-query log-sum-exp and Delta = <grad_out, out> (kreg.ops.backward's contract:
recomputed from the inputs, no saved forward state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params, next_power_of_2
from kreg.ops.plans import MIN_DOT, PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """grad_q, grad_k, grad_v [L, D] in the inputs' dtype, and the scratch lse, delta [L] fp32
    (written by the first launch, read by the second; zero for items past N)."""
    import torch

    q = inputs["q"]
    outputs = {
        f"grad_{name}": torch.empty_like(inputs[name], memory_format=torch.contiguous_format)
        for name in ("q", "k", "v")
    }
    outputs["lse"] = torch.empty(q.shape[0], dtype=torch.float32, device=q.device)
    outputs["delta"] = torch.empty(q.shape[0], dtype=torch.float32, device=q.device)
    return outputs


def launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """1. a program per (row, query block): lse, Delta and grad_q; 2. a program per (row, key
    block): grad_k and grad_v. Both grids are (B, cdiv(min(N, L), BLOCK_OWN))."""
    q, k, v, offsets, grad_out = inputs["q"], inputs["k"], inputs["v"], inputs["offsets"], inputs["grad_out"]
    grad_q, grad_k, grad_v = outputs["grad_q"], outputs["grad_k"], outputs["grad_v"]
    lse, delta = outputs["lse"], outputs["delta"]
    if any(t.stride(1) != 1 for t in (q, k, v, grad_out, grad_q, grad_k, grad_v) if t.shape[1] > 1):
        raise ValueError("jagged_flash_attention_backward needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_flash_attention_backward needs contiguous offsets")
    if any(t.numel() > 1 and t.stride(0) != 1 for t in (lse, delta)):
        raise ValueError("jagged_flash_attention_backward needs contiguous lse and delta scratch")
    if not (q.shape == k.shape == v.shape == grad_out.shape):
        raise ValueError(
            f"jagged_flash_attention_backward needs q, k, v and grad_out of one shape, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}, {tuple(grad_out.shape)}"
        )
    max_len = inputs["max_N"]
    if max_len < 1:
        raise ValueError(f"max_N must be >= 1, got {max_len}")
    rows, width = offsets.numel() - 1, q.shape[1]
    # No row has more than L items: blocks past min(N, L) would all be idle.
    grid = (rows, -(-min(max_len, q.shape[0]) // config.constexprs["BLOCK_OWN"]))
    constexprs = {"BLOCK_D": max(MIN_DOT, next_power_of_2(width))}
    return [
        KernelLaunch(
            entry_point="jagged_flash_attention_backward_dq_kernel",
            args=(
                q, k, v, offsets, grad_out, grad_q, lse, delta, width, max_len,
                q.stride(0), k.stride(0), v.stride(0), grad_out.stride(0), grad_q.stride(0),
            ),
            grid=grid,
            constexprs=constexprs,
        ),
        KernelLaunch(
            entry_point="jagged_flash_attention_backward_dkdv_kernel",
            args=(
                q, k, v, offsets, grad_out, lse, delta, grad_k, grad_v, width, max_len,
                q.stride(0), k.stride(0), v.stride(0), grad_out.stride(0), grad_k.stride(0), grad_v.stride(0),
            ),
            grid=grid,
            constexprs=constexprs,
        ),
    ]


PLANS["jagged_flash_attention_backward"] = LaunchPlan(allocate_outputs, launches)
