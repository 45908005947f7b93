"""swish_layer_norm_backward@1: the gradient of swish_layer_norm@1, out = x * sigmoid(y) with
y = LN(x; weight, bias) (kreg.ops.backward documents the backward operators' inputs and
outputs; kreg.ops.backward.layer_norm their launch plan).

Key params: as swish_layer_norm's (`dtype` fp32|fp16|bf16, `D` optional). Dims, edge cases and
tuning shapes: swish_layer_norm's (`N` rows of width `D`, `constant_every`, `shift`).
Inputs: {"x": [N, D], "weight": [D], "bias": [D], "grad_out": [N, D]}; outputs:
{"grad_x": [N, D], "grad_weight": [D], "grad_bias": [D]} in the inputs' dtype, plus the fp32
scratch {"partial_weight", "partial_bias": [P, D]} between the two launches.

The kernel source (kernel.py) is shared with layer_norm_mul_backward: one row kernel for
both (its SWISH constexpr picks the operator), then one reduce kernel.

The oracle of both is autograd through the forward's reference in float64 (not float32 as
backward_template's), rounded once to each input's dtype. The float32 one is itself off by
more than the tolerance on the forward's own edge cases: its LN backward's rounding is
amplified by rstd (up to 1/sqrt(eps) ~ 316 on zero-variance rows; D = 1 gives grad_x ~ 1e-4
where the gradient is exactly 0) and by a large common offset (`shift`): measured against
float64 over 200 seeds of the edge cases it misses by up to 17x layer_norm_tolerance in fp32
and 5x in fp16, while the kernel stays within 1.4e-5 of float64 in fp32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.ops.plans import layer_norm_block_d

from generator.operators import swish_layer_norm
from generator.operators.backward import backward_template, reference_backward
from generator.operators.base import Config, Dims, OperatorTemplate, Params, config_grid, element_size, fixed_dim

if TYPE_CHECKING:
    import torch

KERNEL_SOURCE = Path(__file__).with_name("kernel.py")


# The default (first) config: a row per program and 4 warps (4 elements of a tile per thread,
# about 60 registers on sm_90, so 8 such programs fit an SM: one full wave of 8 per SM).
DEFAULT = Config({"BLOCK_ROWS": 1, "PROGRAMS_PER_SM": 8}, 4, 1)


def row_backward_configs(params: Params) -> list[Config]:
    """Rows per program x warps x programs per SM (the bounded grid) for the backward row
    kernels, which hold two or three [BLOCK_ROWS, BLOCK_D >= D] fp32 operand tiles, their
    intermediates and two accumulator tiles in registers: 2-16 elements of a tile per thread
    of a 32-wide warp and at most 128 per thread x warps (sm_90 needs ~12 registers per
    element: 32 elements spill, and so do 16 at 16 warps, capped at 128 registers), tiles
    up to 8k elements (one row of the widest D, 8192, spills), 8-64 warps per SM in all.
    One stage: the loop's loads are not software-pipelined (num_stages compiles to the same
    code). Without D in the key the space is laid out for D = 512 (OPERATORS.md): 45 configs."""
    block_d = layer_norm_block_d(int(params.get("D", 512)))

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_ROWS"] * block_d
        per_thread = tile // (32 * warps)
        # D = 8192 has only a row at 16 warps, 16 elements a thread: it spills, but it runs.
        fits = per_thread * warps <= 128 or (c["BLOCK_ROWS"] == 1 and warps == 16)
        return tile <= 8192 and 2 <= per_thread <= 16 and fits and 8 <= c["PROGRAMS_PER_SM"] * warps <= 64

    grid = config_grid(
        {"BLOCK_ROWS": (1, 2, 4, 8, 16, 32, 64), "PROGRAMS_PER_SM": (1, 2, 4, 8, 16)},
        num_warps=(1, 2, 4, 8, 16),
        num_stages=(1,),
        keep=keep,
    )
    return [DEFAULT, *(c for c in grid if c != DEFAULT)] if DEFAULT in grid else grid


def float64_oracle(template: OperatorTemplate, forward: OperatorTemplate) -> OperatorTemplate:
    """`template` with its oracle run in float64: autograd through `forward`'s reference on
    the inputs upcast to float64, each gradient rounded once to its input's dtype."""

    def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        import torch

        wide = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in inputs.items()}
        grads = reference_backward(forward, params, wide)
        return {name: grad.to(inputs[name.removeprefix("grad_")].dtype) for name, grad in grads.items()}

    return dataclasses.replace(template, reference=reference)


def config_space(params: Params) -> list[Config]:
    swish_layer_norm.config_space(params)  # the forward's own checks
    return row_backward_configs(params)


def bytes_moved(params: Params, dims: Dims) -> int:
    """x and grad_out read once, grad_x written once; weight and bias read, their gradients
    written (the partial sums between the launches are scratch, not counted)."""
    rows, width = dims["N"], fixed_dim(params, dims, "D")
    return (3 * rows + 4) * width * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """Statistics, normalise, gate, its derivative, the LN backward's two row sums and the
    two column sums: about 25 per element."""
    return 25 * dims["N"] * fixed_dim(params, dims, "D")


TEMPLATE = float64_oracle(
    backward_template(
        swish_layer_norm.TEMPLATE,
        kernel_source_path=KERNEL_SOURCE,
        config_space=config_space,
        bytes_moved=bytes_moved,
        flops=flops,
        tolerance=swish_layer_norm.layer_norm_tolerance,
        tile_elements=swish_layer_norm.row_tile_elements,
    ),
    swish_layer_norm.TEMPLATE,
)
