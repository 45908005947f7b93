"""dlrm_dot_interaction@1: DLRM's pairwise dot interaction (TorchRec InteractionArch).

Key params: `dtype` fp32|fp16|bf16 (default fp32), `D` and `F` (optional: fix the embedding
width and the number of sparse features).
Dims: `B` samples, `F` sparse features, `D` width (F and D unless the key fixes them).
Inputs: {"dense": [B, D], "sparse": [B, F, D]}; outputs: {"out": [B, D + (F+1)F/2]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import MIN_DOT, PLANS, output_width

from generator.operators.base import (
    FLOAT_DTYPES,
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    config_grid,
    element_size,
    fixed_dim,
    float_tolerance,
    next_power_of_2,
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

NAME = "dlrm_dot_interaction"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "D": None, "F": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    """BLOCK_D (the D slice per tl.dot) x samples per program x warps x stages; with D fixed
    by the key, slices wider than D collapse to one. 54 configs unconstrained or for D=128."""
    _checked(params)
    widest = max(MIN_DOT, next_power_of_2(int(params["D"]))) if "D" in params else 128
    return config_grid(
        {"BLOCK_D": sorted({min(b, widest) for b in (32, 64, 128)}), "ROWS_PER_PROGRAM": (1, 2, 4)},
        num_warps=(1, 2, 4),
        num_stages=(1, 2),
    )


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    dtype = torch_dtype(params.get("dtype", "fp32"))
    batch, features, width = dims["B"], fixed_dim(params, dims, "F"), fixed_dim(params, dims, "D")
    dense = torch.randn(batch, width, generator=generator)
    sparse = torch.randn(batch, features, width, generator=generator)
    return {"dense": dense.to(dtype).to(device), "sparse": sparse.to(dtype).to(device)}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """No sparse feature (output = dense), D = 1, F + 1 exactly one dot block (16) and one
    past it (17), production F and D, widths not a power of two, B not a multiple of the
    samples per program."""
    _checked(params)

    def dim(name: str, default: int) -> int:
        return int(params[name]) if name in params else default

    return [
        {"B": 2, "F": dim("F", 0), "D": dim("D", 8)},
        {"B": 1, "F": dim("F", 1), "D": dim("D", 1)},
        {"B": 5, "F": dim("F", 5), "D": dim("D", 33)},
        {"B": 3, "F": dim("F", 15), "D": dim("D", 20)},
        {"B": 7, "F": dim("F", 16), "D": dim("D", 24)},
        {"B": 3, "F": dim("F", 26), "D": dim("D", 128)},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 2048-16384, F 26, D 128 (the peers were timed at B 8192)."""
    _checked(params)
    features, width = int(params.get("F", 26)), int(params.get("D", 128))
    return [TuningShape({"B": batch, "F": features, "D": width}) for batch in (2048, 8192, 16384)]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.dlrm_dot_interaction(inputs["dense"], inputs["sparse"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    batch, features, width = dims["B"], fixed_dim(params, dims, "F"), fixed_dim(params, dims, "D")
    moved = batch * ((features + 1) * width + output_width(features, width))
    return moved * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """The useful products only: (F+1)F/2 dot products of length D per sample."""
    batch, features, width = dims["B"], fixed_dim(params, dims, "F"), fixed_dim(params, dims, "D")
    return batch * (features + 1) * features * width


TEMPLATE = OperatorTemplate(
    name=NAME,
    version=VERSION,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    make_inputs=make_inputs,
    edge_cases=edge_cases,
    tuning_shapes=tuning_shapes,
    allocate_outputs=_PLAN.allocate_outputs,
    launches=_PLAN.launches,
    reference=reference,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=float_tolerance,
)
