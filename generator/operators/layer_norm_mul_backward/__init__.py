"""layer_norm_mul_backward@1: the gradient of layer_norm_mul@1, out = act(u) * y with
y = LN(x; weight, bias) (kreg.ops.backward documents the backward operators' inputs and
outputs; kreg.ops.backward.layer_norm their launch plan).

Key params: as layer_norm_mul's (`act` none|sigmoid|silu, `dtype` fp32|fp16|bf16, `D`
optional). Dims, edge cases and tuning shapes: layer_norm_mul's (`N` rows of width `D`,
`constant_every`, `shift`).
Inputs: {"x": [N, D], "u": [N, D], "weight": [D], "bias": [D], "grad_out": [N, D]}; outputs:
{"grad_x": [N, D], "grad_u": [N, D], "grad_weight": [D], "grad_bias": [D]} in the inputs' dtype,
plus the fp32 scratch {"partial_weight", "partial_bias": [P, D]} between the two launches.

The kernel source is swish_layer_norm_backward's kernel.py (one file for both operators),
and the oracle is likewise autograd in float64 (swish_layer_norm_backward says why).
"""

from __future__ import annotations

from generator.operators import layer_norm_mul, swish_layer_norm
from generator.operators.backward import backward_template
from generator.operators.base import Config, Dims, Params, element_size, fixed_dim
from generator.operators.swish_layer_norm_backward import KERNEL_SOURCE, float64_oracle, row_backward_configs


def config_space(params: Params) -> list[Config]:
    layer_norm_mul.config_space(params)  # the forward's own checks
    return row_backward_configs(params)


def bytes_moved(params: Params, dims: Dims) -> int:
    """x, u and grad_out read once, grad_x and grad_u written once; weight and bias read,
    their gradients written (the partial sums between the launches are scratch)."""
    rows, width = dims["N"], fixed_dim(params, dims, "D")
    return (5 * rows + 4) * width * element_size(params.get("dtype", "fp32"))


def flops(params: Params, dims: Dims) -> int | None:
    """Statistics, normalise, the gate and its derivative, the LN backward's two row sums
    and the two column sums: about 25 per element."""
    return 25 * dims["N"] * fixed_dim(params, dims, "D")


TEMPLATE = float64_oracle(
    backward_template(
        layer_norm_mul.TEMPLATE,
        kernel_source_path=KERNEL_SOURCE,
        config_space=config_space,
        bytes_moved=bytes_moved,
        flops=flops,
        tolerance=swish_layer_norm.layer_norm_tolerance,
        tile_elements=swish_layer_norm.row_tile_elements,
    ),
    layer_norm_mul.TEMPLATE,
)
