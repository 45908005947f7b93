"""hstu_attention_backward: grad_q, grad_k, grad_v of HSTU's pointwise attention, per jagged
row and head: with S = alpha Q Kᵀ and A = silu(S) / N * mask, dV = Aᵀ dO and
dS = (dO Vᵀ) * mask / N * silu'(S) * alpha, dQ = dS K, dK = dSᵀ Q (items past N get 0)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params, next_power_of_2
from kreg.ops.plans import MIN_DOT, PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {
        f"grad_{name}": torch.empty_like(inputs[name], memory_format=torch.contiguous_format) for name in ("q", "k", "v")
    }


def launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    """Two launches, each output element summed by one program: dK and dV per key block
    (over the query blocks that see it), then dQ per query block (over the key blocks it
    sees); grids (B, H, cdiv(min(N, L), BLOCK_OUTER))."""
    q, k, v, offsets, targets = inputs["q"], inputs["k"], inputs["v"], inputs["offsets"], inputs["num_targets"]
    grad_out = inputs["grad_out"]
    grad_q, grad_k, grad_v = outputs["grad_q"], outputs["grad_k"], outputs["grad_v"]
    tensors = (q, k, v, grad_out, grad_q, grad_k, grad_v)
    if any(t.dim() != 3 or t.shape != q.shape for t in tensors):
        raise ValueError("hstu_attention_backward needs q, k, v, grad_out and the gradients all [L, H, D] alike")
    if any(t.stride(2) != 1 for t in tensors):
        raise ValueError("hstu_attention_backward needs unit stride along D")
    if offsets.stride(0) != 1 or targets.stride(0) != 1:
        raise ValueError("hstu_attention_backward needs contiguous offsets and num_targets")
    max_len = inputs["max_N"]
    if max_len < 1:
        raise ValueError(f"max_N must be >= 1, got {max_len}")
    rows, heads, width = offsets.numel() - 1, q.shape[1], q.shape[2]
    # As the forward plan resolves it.
    alpha = float(inputs["alpha"]) if inputs.get("alpha") is not None else width**-0.5
    # No row has more than L items: blocks past min(N, L) would all be idle.
    grid = (rows, heads, -(-min(max_len, q.shape[0]) // config.constexprs["BLOCK_OUTER"]))
    constexprs = {"BLOCK_D": max(MIN_DOT, next_power_of_2(width))}
    common = (width, max_len, alpha) + tuple(
        s for t in (q, k, v, grad_out) for s in (t.stride(0), t.stride(1))
    )
    return [
        KernelLaunch(
            entry_point="hstu_attention_backward_dkdv_kernel",
            args=(
                q, k, v, grad_out, offsets,
                # int64 [B], zeros when the call has none (the same mask as no targets).
                targets, grad_k, grad_v, *common,
                grad_k.stride(0), grad_k.stride(1), grad_v.stride(0), grad_v.stride(1),
            ),
            grid=grid,
            constexprs=constexprs,
        ),
        KernelLaunch(
            entry_point="hstu_attention_backward_dq_kernel",
            args=(q, k, v, grad_out, offsets, targets, grad_q, *common, grad_q.stride(0), grad_q.stride(1)),
            grid=grid,
            constexprs=constexprs,
        ),
    ]


PLANS["hstu_attention_backward"] = LaunchPlan(allocate_outputs, launches)
