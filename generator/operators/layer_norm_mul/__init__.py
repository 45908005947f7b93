"""layer_norm_mul@1: out = act(u) * LN(x; weight, bias) per row (generative-recommenders'
layer-norm-mul), LN with eps 1e-5, computed in fp32 and cast back once.

Key params: `act` none|sigmoid|silu (the gate on u; default none), `dtype` fp32|fp16|bf16
(x, u, weight, bias and out; default fp32), `D` (optional: fixes the width).
Dims: as swish_layer_norm's (`N`, `D`, `constant_every`, `shift`).
Inputs: {"x": [N, D], "u": [N, D], "weight": [D], "bias": [D]}; outputs: {"out": [N, D]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS

from generator.operators.base import (
    FLOAT_DTYPES,
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    element_size,
    fixed_dim,
    torch_dtype,
)
from generator.operators.swish_layer_norm import (
    layer_norm_tolerance,
    make_affine,
    make_rows,
    row_block_configs,
    row_tile_elements,
    row_edge_cases,
    row_tuning_shapes,
)

if TYPE_CHECKING:
    import torch

NAME = "layer_norm_mul"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"act": ("none", "sigmoid", "silu"), "dtype": FLOAT_DTYPES, "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    return row_block_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    dtype = torch_dtype(params.get("dtype", "fp32"))
    x = make_rows(params, dims, generator).to(dtype).to(device)
    u = (2 * torch.randn(x.shape, generator=generator)).to(dtype).to(device)
    return {"x": x, "u": u, **make_affine(params, dims, generator, device)}


def edge_cases(params: Params) -> list[dict[str, int]]:
    return row_edge_cases(_checked(params))


def tuning_shapes(params: Params) -> list[TuningShape]:
    return row_tuning_shapes(_checked(params))


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    act = params.get("act", "none")
    return {"out": ref.layer_norm_mul(inputs["x"], inputs["u"], inputs["weight"], inputs["bias"], act=act)}


def bytes_moved(params: Params, dims: Dims) -> int:
    """x and u read once, out written once, weight and bias read once."""
    rows, width = dims["N"], fixed_dim(params, dims, "D")
    return (3 * rows + 2) * width * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """Mean, variance, normalise, affine, the gate and the product: about 10 per element."""
    return 10 * dims["N"] * fixed_dim(params, dims, "D")


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
    tolerance=layer_norm_tolerance,
    tile_elements=row_tile_elements,
)
