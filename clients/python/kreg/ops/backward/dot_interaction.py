"""dlrm_dot_interaction_backward: with T = cat(dense[:, None], sparse) [B, F+1, D] and G the
(F+1)x(F+1) matrix of grad_out's pair columns (G[i, j] = grad of pair (i, j) for i < j, zero
elsewhere), dT = (G + Gᵀ) T; grad_dense = grad_out[:, :D] + dT[:, 0], grad_sparse = dT[:, 1:]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params, next_power_of_2
from kreg.ops.plans import MIN_DOT, PLANS, LaunchPlan, output_width

if TYPE_CHECKING:
    import torch


def allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    dense, sparse = inputs["dense"], inputs["sparse"]
    return {
        "grad_dense": torch.empty_like(dense, memory_format=torch.contiguous_format),
        "grad_sparse": torch.empty_like(sparse, memory_format=torch.contiguous_format),
    }


def launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    """One launch, a program per ROWS_PER_PROGRAM consecutive samples: each builds the
    sample's symmetric pair-gradient matrix (BLOCK_F >= F+1, padded to a tl.dot block) once
    and multiplies it into T one BLOCK_D column slice at a time."""
    dense, sparse, grad_out = inputs["dense"], inputs["sparse"], inputs["grad_out"]
    grad_dense, grad_sparse = outputs["grad_dense"], outputs["grad_sparse"]
    batch, features, width = sparse.shape
    if tuple(dense.shape) != (batch, width):
        raise ValueError(f"dense {tuple(dense.shape)} does not match sparse {tuple(sparse.shape)}")
    out_shape = (batch, output_width(features, width))
    if tuple(grad_out.shape) != out_shape:
        raise ValueError(f"grad_out {tuple(grad_out.shape)} is not the output shape {out_shape}")
    if width > 1 and any(t.stride(-1) != 1 for t in (dense, sparse, grad_dense, grad_sparse)):
        raise ValueError("dlrm_dot_interaction_backward needs unit stride along D")
    if grad_out.shape[1] > 1 and grad_out.stride(1) != 1:
        raise ValueError("dlrm_dot_interaction_backward needs a grad_out with unit stride along its columns")
    rows = config.constexprs["ROWS_PER_PROGRAM"]
    return [
        KernelLaunch(
            entry_point="dlrm_dot_interaction_backward_kernel",
            args=(
                dense,
                sparse,
                grad_out,
                grad_dense,
                grad_sparse,
                batch,
                width,
                features,
                dense.stride(0),
                sparse.stride(0),
                sparse.stride(1),
                grad_out.stride(0),
                grad_dense.stride(0),
                grad_sparse.stride(0),
                grad_sparse.stride(1),
            ),
            grid=(-(-batch // rows),),
            constexprs={"BLOCK_F": max(MIN_DOT, next_power_of_2(features + 1))},
        )
    ]


PLANS["dlrm_dot_interaction_backward"] = LaunchPlan(allocate_outputs, launches)
