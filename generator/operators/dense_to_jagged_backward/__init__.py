"""dense_to_jagged_backward@1: the gradient of dense_to_jagged@1 (kreg.ops.backward documents
the backward operators' inputs and outputs).

grad_dense[b, i] = grad_out[offsets[b] + i] for i < min(len_b, N), and 0 at the positions
past a row's end (items past N were written as 0 by the forward: they pass no gradient back).
That is jagged_to_padded_dense of grad_out with padding 0, so this template ships
jagged_to_padded_dense's kernel.py (no copy of its own) with jagged_to_padded_dense's config
space; its launch plan is kreg.ops.backward.padding.

Key params, dims, edge cases and tuning shapes: dense_to_jagged's (`dtype`, `index_dtype`,
`D`; B, D, N, row lengths). Inputs: dense_to_jagged's {"dense": [B, N, D], "offsets": [B+1],
"L": int} plus {"grad_out": [L, D]}; outputs: {"grad_dense": [B, N, D]} in the dense dtype.
"""

from __future__ import annotations

from generator.operators import dense_to_jagged, jagged_to_padded_dense
from generator.operators.backward import backward_template
from generator.operators.base import Config, Dims, Params


def config_space(params: Params) -> list[Config]:
    dense_to_jagged.config_space(params)  # the forward's own checks
    return jagged_to_padded_dense.config_space(params)  # the kernel's


def bytes_moved(params: Params, dims: Dims) -> int:
    """grad_out's kept items read once, the whole grad_dense written once, offsets read:
    jagged_to_padded_dense's traffic at the same dims."""
    return jagged_to_padded_dense.bytes_moved(params, dims)


def flops(params: Params, dims: Dims) -> int | None:
    return None


TEMPLATE = backward_template(
    dense_to_jagged.TEMPLATE,
    kernel_source_path=jagged_to_padded_dense.TEMPLATE.kernel_source_path,
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
)
