"""dcn_lowrank_cross@1: DCN-v2's low-rank cross network (TorchRec LowRankCrossNet),
x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l for l < L, all layers in one launch.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `N` (width), `r` (rank) and `layers` (L),
each optional: they fix that dimension.
Dims: `B` samples, `N`, `r`, `layers` (unless the key fixes them).
Inputs: {"x0": [B, N], "V": [L, r, N], "W": [L, N, r], "bias": [L, N]};
outputs: {"out": [B, N]} = x_L in the input dtype (see kreg.ops.reference.dcn_lowrank_cross
for where a half dtype rounds), and the scratch {"xv": [B, r]} between each layer's products.
"""

from __future__ import annotations

import math
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
    config_grid,
    element_size,
    fixed_dim,
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

NAME = "dcn_lowrank_cross"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "N": None, "r": None, "layers": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


# Tried first: a 64 x 128 output tile in 32-deep, 3-stage steps fits the shared memory of
# every target (~48 KiB of gfx90a's 64 KiB LDS), so the one config an interpreted (untimed)
# job verifies compiles everywhere and is a reasonable product.
_DEFAULT = Config({"BLOCK_B": 64, "BLOCK_N": 128, "BLOCK_K": 32}, 4, 3)


def config_space(params: Params) -> list[Config]:
    """The output tile [BLOCK_B, BLOCK_N] (of xv for the projection, of x_{l+1} for the
    expansion) x the reduction step BLOCK_K x warps x stages. The fp32 accumulator stays at
    most 128 registers per thread and one stage's operand tiles under 64 KiB (the hardware's
    own shared-memory limit is left to compilation). 64 configs in bf16, 52 in fp32."""
    _checked(params)
    size = element_size(params.get("dtype", "fp32"))

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        accumulator = c["BLOCK_B"] * c["BLOCK_N"] // (32 * warps)
        stage = (c["BLOCK_B"] + c["BLOCK_N"]) * c["BLOCK_K"] * size
        return 16 <= accumulator <= 128 and stage <= 64 * 1024 and stage * stages <= 192 * 1024

    grid = config_grid(
        {"BLOCK_B": (32, 64, 128), "BLOCK_N": (64, 128, 256), "BLOCK_K": (32, 64)},
        num_warps=(4, 8),
        num_stages=(3, 4),
        keep=keep,
    )
    return [_DEFAULT, *(c for c in grid if c != _DEFAULT)] if _DEFAULT in grid else grid


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """x0 normal; V and W scaled by 1/sqrt(fan-in) (W by half that) and a small bias, so that
    x_l stays of order one across layers (its variance grows by 1.25 per layer)."""
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    dtype = torch_dtype(params.get("dtype", "fp32"))
    batch = dims["B"]
    width, rank, layers = fixed_dim(params, dims, "N"), fixed_dim(params, dims, "r"), fixed_dim(params, dims, "layers")
    x0 = torch.randn(batch, width, generator=generator)
    V = torch.randn(layers, rank, width, generator=generator) / math.sqrt(width)
    W = 0.5 * torch.randn(layers, width, rank, generator=generator) / math.sqrt(rank)
    bias = 0.1 * torch.randn(layers, width, generator=generator)
    return {name: t.to(dtype).to(device) for name, t in {"x0": x0, "V": V, "W": W, "bias": bias}.items()}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """One sample, no sample, a partial row block, N and r not multiples of any block (r = 1
    is one real rank among 15 padding ones), one layer, tiny N."""
    _checked(params)

    def dim(name: str, default: int) -> int:
        return int(params[name]) if name in params else default

    if "N" in params and "r" in params:
        # Width and rank fixed by the key: the cases below would differ only in their batch,
        # and at production widths each costs the interpreter tens of seconds.
        return [{"B": batch, "N": dim("N", 0), "r": dim("r", 0), "layers": dim("layers", 3)} for batch in (1, 0, 17)]
    return [
        {"B": 1, "N": dim("N", 24), "r": dim("r", 8), "layers": dim("layers", 3)},
        {"B": 0, "N": dim("N", 16), "r": dim("r", 16), "layers": dim("layers", 2)},
        {"B": 17, "N": dim("N", 33), "r": dim("r", 20), "layers": dim("layers", 3)},
        {"B": 5, "N": dim("N", 40), "r": dim("r", 1), "layers": dim("layers", 2)},
        {"B": 3, "N": dim("N", 70), "r": dim("r", 17), "layers": dim("layers", 1)},
        {"B": 4, "N": dim("N", 3), "r": dim("r", 2), "layers": dim("layers", 3)},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: N 3456 (MLPerf DLRM-DCNv2's interaction input), r 512, 3 layers, B up to 16384."""
    _checked(params)
    width, rank, layers = int(params.get("N", 3456)), int(params.get("r", 512)), int(params.get("layers", 3))
    return [TuningShape({"B": batch, "N": width, "r": rank, "layers": layers}) for batch in (2048, 8192, 16384)]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.dcn_lowrank_cross(inputs["x0"], inputs["V"], inputs["W"], inputs["bias"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    """x0 read and x_L written once, each layer's V, W and bias read once (the minimum; the
    kernel reads x0 and x_l and writes x_{l+1} per layer, and rereads operand tiles from L2)."""
    batch = dims["B"]
    width, rank, layers = fixed_dim(params, dims, "N"), fixed_dim(params, dims, "r"), fixed_dim(params, dims, "layers")
    return (2 * batch * width + layers * (2 * rank * width + width)) * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """Two products of 2 N r flops per sample and layer, plus the 3-flop epilogue per element."""
    batch = dims["B"]
    width, rank, layers = fixed_dim(params, dims, "N"), fixed_dim(params, dims, "r"), fixed_dim(params, dims, "layers")
    return layers * batch * (4 * width * rank + 3 * width)


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """Looser than one rounding: the reference and the kernel sum the N- and r-long products
    in different orders, and in a half dtype an intermediate that lands on a rounding
    boundary rounds apart and carries its ulp into the next layers, so errors are ulps of the
    row's larger values (x_L up to ~18 at the tuning shapes), not of each element. Measured
    on an H100 at B 4096, N 3456, r 512, 3 layers: bf16 max |err| 0.125 (max rel 0.019
    against these), fp16 0.016 (0.0027), fp32 ~3e-6 relative."""
    import torch

    return {
        torch.float32: (5e-5, 5e-5),
        torch.float16: (4e-3, 8e-3),
        torch.bfloat16: (3e-2, 6e-2),
    }.get(dtype, (1e-9, 1e-12))


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
    tolerance=tolerance,
)
