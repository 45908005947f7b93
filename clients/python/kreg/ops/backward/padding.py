"""jagged_to_padded_dense_backward and dense_to_jagged_backward: each is the other's forward.

Padding and unpadding are copies, so each gradient is the other operator applied to grad_out:
- jagged_to_padded_dense: grad_values[offsets[b] + i] = grad_out[b, i] for i < N, 0 for the
  items a row loses past N (the padding value is a constant: no gradient). That is
  dense_to_jagged of grad_out, and its launch is dense_to_jagged's kernel.
- dense_to_jagged: grad_dense[b, i] = grad_out[offsets[b] + i] for i < min(len_b, N), 0 past
  a row's end. That is jagged_to_padded_dense of grad_out with padding 0, and its launch is
  jagged_to_padded_dense's kernel.
Both templates ship the other forward's kernel.py as their source blob. As the forwards,
they take L = offsets[-1] (the items a row covers are the whole values tensor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params
from kreg.ops.plans import PLANS, LaunchPlan

if TYPE_CHECKING:
    import torch


def _unit_stride_along_d(name: str, *tensors: Any) -> None:
    """The kernels index D without a stride (a width of 1 has none to take); values and
    dense are not read, only their shapes."""
    if any(t.stride(-1) != 1 for t in tensors if t.shape[-1] > 1):
        raise ValueError(f"{name} needs unit stride along D")


# --- jagged_to_padded_dense_backward: dense_to_jagged's kernel on grad_out -------------------


def jagged_to_padded_dense_backward_allocate_outputs(
    params: Params, inputs: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    import torch

    return {"grad_values": torch.empty_like(inputs["values"], memory_format=torch.contiguous_format)}


def jagged_to_padded_dense_backward_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """One launch of dense_to_jagged_kernel, grid (B, cdiv(D, BLOCK_D)): a program per (row,
    column block) copies grad_out[b, :min(len_b, N)] to the row's items and writes 0 to the
    items past N."""
    values, offsets, grad_out = inputs["values"], inputs["offsets"], inputs["grad_out"]
    grad_values = outputs["grad_values"]
    rows, max_len, width = offsets.numel() - 1, inputs["N"], values.shape[1]
    if tuple(grad_out.shape) != (rows, max_len, width):
        raise ValueError(f"grad_out must be [B, N, D] = {[rows, max_len, width]}, got {list(grad_out.shape)}")
    _unit_stride_along_d("jagged_to_padded_dense_backward", grad_out, grad_values)
    if offsets.stride(0) != 1:
        raise ValueError("jagged_to_padded_dense_backward needs contiguous offsets")
    return [
        KernelLaunch(
            entry_point="dense_to_jagged_kernel",
            args=(
                grad_out, offsets, grad_values, max_len, width,
                grad_out.stride(0), grad_out.stride(1), grad_values.stride(0),
            ),
            grid=(rows, -(-width // config.constexprs["BLOCK_D"])),
        )
    ]


# --- dense_to_jagged_backward: jagged_to_padded_dense's kernel on grad_out, padding 0 --------


def dense_to_jagged_backward_allocate_outputs(
    params: Params, inputs: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    import torch

    dense = inputs["dense"]
    return {"grad_dense": torch.empty(dense.shape, dtype=dense.dtype, device=dense.device)}


def dense_to_jagged_backward_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """One launch of jagged_to_padded_dense_kernel with padding 0, grid (B, cdiv(D, BLOCK_D)):
    a program per (row, column block) writes all N dense positions of its row, the row's
    gradient items first and 0 after them."""
    dense, offsets, grad_out = inputs["dense"], inputs["offsets"], inputs["grad_out"]
    grad_dense = outputs["grad_dense"]
    rows, max_len, width = dense.shape
    if tuple(grad_out.shape) != (inputs["L"], width):
        raise ValueError(f"grad_out must be [L, D] = {[inputs['L'], width]}, got {list(grad_out.shape)}")
    _unit_stride_along_d("dense_to_jagged_backward", grad_out, grad_dense)
    if offsets.stride(0) != 1:
        raise ValueError("dense_to_jagged_backward needs contiguous offsets")
    return [
        KernelLaunch(
            entry_point="jagged_to_padded_dense_kernel",
            args=(
                grad_out, offsets, grad_dense, max_len, width, 0.0,
                grad_out.stride(0), grad_dense.stride(0), grad_dense.stride(1),
            ),
            grid=(rows, -(-width // config.constexprs["BLOCK_D"])),
        )
    ]


PLANS["jagged_to_padded_dense_backward"] = LaunchPlan(
    jagged_to_padded_dense_backward_allocate_outputs, jagged_to_padded_dense_backward_launches
)
PLANS["dense_to_jagged_backward"] = LaunchPlan(
    dense_to_jagged_backward_allocate_outputs, dense_to_jagged_backward_launches
)
