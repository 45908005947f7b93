"""jagged_sum_backward: grad_values[i] = grad_out[row(i)] (times weights[i], or over the row's
length for the mean); with weights also grad_weights[i] = <grad_out[row(i)], values[i]>."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params
from kreg.ops.plans import PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    values = inputs["values"]
    outputs = {"grad_values": torch.empty_like(values, memory_format=torch.contiguous_format)}
    if params.get("weighted", "0") == "1":
        outputs["grad_weights"] = torch.empty(values.shape[0], dtype=values.dtype, device=values.device)
    return outputs


def launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    """One launch. Unweighted: a program per (row, column block) broadcasts its slice of the
    row's gradient. Weighted: a program per row walks every column block, since an item's
    weight gradient is a dot product over the whole width."""
    values, offsets, grad_out = inputs["values"], inputs["offsets"], inputs["grad_out"]
    grad_values = outputs["grad_values"]
    if any(t.stride(1) != 1 for t in (values, grad_out, grad_values) if t.shape[1] > 1):
        raise ValueError("jagged_sum_backward needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_sum_backward needs contiguous offsets")
    weighted = params.get("weighted", "0") == "1"
    weights = inputs["weights"] if weighted else offsets  # unread without WEIGHTED
    grad_weights = outputs["grad_weights"] if weighted else offsets
    if weighted and any(t.numel() > 1 and t.stride(0) != 1 for t in (weights, grad_weights)):
        raise ValueError("jagged_sum_backward needs contiguous weights")
    rows, width = offsets.numel() - 1, values.shape[1]
    column_blocks = 1 if weighted else -(-width // config.constexprs["BLOCK_D"])
    return [
        KernelLaunch(
            entry_point="jagged_sum_backward_kernel",
            args=(
                grad_out, values, offsets, weights, grad_values, grad_weights, width,
                grad_out.stride(0), values.stride(0), grad_values.stride(0),
            ),
            grid=(rows, column_blocks),
            constexprs={"MEAN": params.get("mean", "0") == "1", "WEIGHTED": weighted},
        )
    ]


PLANS["jagged_sum_backward"] = LaunchPlan(allocate_outputs, launches)
