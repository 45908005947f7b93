"""jagged_to_padded_dense_backward@1: the gradient of jagged_to_padded_dense@1 (kreg.ops.backward
documents the backward operators' inputs and outputs).

grad_values[offsets[b] + i] = grad_out[b, i] for i < N, and 0 for the items a row loses past
N; the padding value is a constant and gets no gradient. That is dense_to_jagged of grad_out,
so this template ships dense_to_jagged's kernel.py (no copy of its own) with dense_to_jagged's
config space; its launch plan is kreg.ops.backward.padding.

Key params, dims, edge cases and tuning shapes: jagged_to_padded_dense's (`dtype`,
`index_dtype`, `D`; B, D, row lengths, N, pad_milli). Inputs: jagged_to_padded_dense's
{"values": [L, D], "offsets": [B+1], "N": int, "padding_value": float} plus
{"grad_out": [B, N, D]}; outputs: {"grad_values": [L, D]} in the values dtype.
"""

from __future__ import annotations

from generator.operators import dense_to_jagged, jagged_to_padded_dense
from generator.operators.backward import backward_template
from generator.operators.base import Config, Dims, Params


def config_space(params: Params) -> list[Config]:
    jagged_to_padded_dense.config_space(params)  # the forward's own checks
    return dense_to_jagged.config_space(params)  # the kernel's


def bytes_moved(params: Params, dims: Dims) -> int:
    """grad_out's kept positions read once, every grad_values item written once, offsets
    read: dense_to_jagged's traffic at the same dims."""
    return dense_to_jagged.bytes_moved(params, dims)


def flops(params: Params, dims: Dims) -> int | None:
    return None


TEMPLATE = backward_template(
    jagged_to_padded_dense.TEMPLATE,
    kernel_source_path=dense_to_jagged.TEMPLATE.kernel_source_path,
    config_space=config_space,
    bytes_moved=bytes_moved,
    flops=flops,
)
