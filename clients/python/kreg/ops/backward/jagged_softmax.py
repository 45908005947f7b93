"""jagged_softmax_backward: within each row's first max_L items, per column, with
y = softmax(values), grad_values = y * (grad_out - sum_over_row(grad_out * y)); items past
max_L get 0 (the forward writes a constant 0 there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params
from kreg.ops.plans import PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {"grad_values": torch.empty_like(inputs["values"], memory_format=torch.contiguous_format)}


def launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """One launch, a program per (row, BLOCK_D column slice): the row's softmax statistics
    (max, sum of exp, and the dot product of grad_out with the softmax) are per column, so a
    column slice of a row is independent of the others and needs no cross-program reduction."""
    values, offsets, grad_out = inputs["values"], inputs["offsets"], inputs["grad_out"]
    grad_values = outputs["grad_values"]
    if grad_out.shape != values.shape:
        raise ValueError(
            f"grad_out {tuple(grad_out.shape)} must have the shape of values {tuple(values.shape)}"
        )
    if any(t.stride(1) != 1 for t in (values, grad_out, grad_values) if t.shape[1] > 1):
        raise ValueError("jagged_softmax_backward needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_softmax_backward needs contiguous offsets")
    max_len = inputs["max_L"]
    if max_len < 0:
        raise ValueError(f"max_L must be >= 0, got {max_len}")
    rows, width = offsets.numel() - 1, values.shape[1]
    return [
        KernelLaunch(
            entry_point="jagged_softmax_backward_kernel",
            args=(
                grad_out, values, offsets, grad_values, width, max_len,
                grad_out.stride(0), values.stride(0), grad_values.stride(0),
            ),
            grid=(rows, -(-width // config.constexprs["BLOCK_D"])),
        )
    ]


PLANS["jagged_softmax_backward"] = LaunchPlan(allocate_outputs, launches)
