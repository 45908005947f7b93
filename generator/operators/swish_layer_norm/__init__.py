"""swish_layer_norm@1: out = x * sigmoid(LN(x; weight, bias)) per row (generative-recommenders'
swish_layer_norm), LN with eps 1e-5, computed in fp32 and cast back once.

Key params: `dtype` fp32|fp16|bf16 (x, weight, bias and out; default fp32), `D` (optional:
fixes the width).
Dims: `N` rows, `D` (unless the key fixes it); `constant_every` k > 0 makes rows n % k == 0
constant (zero variance), `shift` adds a constant to x (LN's cancellation).
Inputs: {"x": [N, D], "weight": [D], "bias": [D]}; outputs: {"out": [N, D]} in x's dtype.
The sibling layer_norm_mul@1 shares this module's search space, shapes and inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS, layer_norm_block_d

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
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

NAME = "swish_layer_norm"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def row_block_configs(params: Params) -> list[Config]:
    """Rows per program x warps for a kernel that holds [BLOCK_ROWS, BLOCK_D >= D] tiles in
    registers: 4-64 elements per thread of a 32-wide warp, tiles up to 16k elements. Without
    D in the key the space is laid out for D = 512 (OPERATORS.md). 17 configs for D=512."""
    block_d = layer_norm_block_d(int(params.get("D", 512)))

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_ROWS"] * block_d
        return tile <= 16384 and 4 <= tile // (32 * warps) <= 64

    return config_grid({"BLOCK_ROWS": (1, 2, 4, 8, 16, 32, 64)}, num_warps=(1, 2, 4, 8), num_stages=(1,), keep=keep)


def row_tile_elements(params: Params, config: Config) -> int:
    """BLOCK_ROWS whole rows: the launch fixes BLOCK_D to the row's width."""
    return config.constexprs["BLOCK_ROWS"] * layer_norm_block_d(int(params.get("D", 512)))


def config_space(params: Params) -> list[Config]:
    return row_block_configs(_checked(params))


def make_rows(params: Params, dims: Dims, generator: torch.Generator) -> torch.Tensor:
    """x [N, D] as fp32 on the CPU: normal, plus `shift`, constant rows every `constant_every`."""
    import torch

    rows, width = dims["N"], fixed_dim(params, dims, "D")
    x = torch.randn(rows, width, generator=generator) + dims.get("shift", 0)
    every = dims.get("constant_every", 0)
    if every > 0:
        x[::every] = x[::every, :1]
    return x


def make_affine(params: Params, dims: Dims, generator: torch.Generator, device: str) -> dict[str, Any]:
    width = fixed_dim(params, dims, "D")
    dtype = torch_dtype(params.get("dtype", "fp32"))
    import torch

    weight = 1 + 0.5 * torch.randn(width, generator=generator)
    bias = 0.5 * torch.randn(width, generator=generator)
    return {"weight": weight.to(dtype).to(device), "bias": bias.to(dtype).to(device)}


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    x = make_rows(params, dims, generator).to(torch_dtype(params.get("dtype", "fp32"))).to(device)
    return {"x": x, **make_affine(params, dims, generator, device)}


def row_edge_cases(params: Params) -> list[dict[str, int]]:
    """One row, no row, rows not a multiple of any BLOCK_ROWS, D = 1 (zero variance: LN is the
    bias), constant rows, a large shift (cancellation), widths past a power of two, D = 512."""

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"N": 1, "D": width(512)},
        {"N": 0, "D": width(16)},
        {"N": 7, "D": width(33)},
        {"N": 5, "D": width(1)},
        {"N": 9, "D": width(130), "constant_every": 2},
        {"N": 3, "D": width(20), "shift": 100},
        {"N": 67, "D": width(8)},
    ]


def edge_cases(params: Params) -> list[dict[str, int]]:
    return row_edge_cases(_checked(params))


def row_tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: N 4.2 M x D 512 (HSTU), peers timed at 1 M x 512; and a smaller batch."""
    width = int(params.get("D", 512))
    return [TuningShape({"N": rows, "D": width}) for rows in (1 << 20, 4_200_000, 1 << 17)]


def tuning_shapes(params: Params) -> list[TuningShape]:
    return row_tuning_shapes(_checked(params))


def layer_norm_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """float_tolerance, but 3e-5 (rtol and atol) for fp32: the fp32 reference's own mean
    carries ulps of the row's offset (torch's CUDA layer_norm: 1.4e-5 absolute on the shift-100
    edge case) that rstd (up to 1/sqrt(eps) ~ 316) amplifies on near-constant rows."""
    import torch

    rtol, atol = float_tolerance(dtype)
    return (3e-5, 3e-5) if dtype == torch.float32 else (rtol, atol)


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.swish_layer_norm(inputs["x"], inputs["weight"], inputs["bias"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    """x read once, out written once, weight and bias read once."""
    rows, width = dims["N"], fixed_dim(params, dims, "D")
    return (2 * rows + 2) * width * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """Mean, variance, normalise, affine, sigmoid and product: about 10 per element."""
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
