"""jagged_sum: out[b] = sum(values[offsets[b]:offsets[b+1]]) (or the mean), fp32 accumulation.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_sum_kernel(
    values_ptr,
    offsets_ptr,
    out_ptr,
    D,
    stride_values,
    stride_out,
    MEAN: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    The program walks its row BLOCK_L items at a time into a [BLOCK_L, BLOCK_D] fp32
    accumulator and reduces over L once at the end: a cross-thread reduction per tile would
    cost more than the extra registers. An empty row skips the loop and stores 0.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    # int64 before any address arithmetic: L * D may pass 2^31 at production shapes.
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    acc = tl.zeros([BLOCK_L, BLOCK_D], dtype=tl.float32)
    for first in range(start, end, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < end)[:, None] & col_mask[None, :]
        tile = tl.load(values_ptr + items[:, None] * stride_values + cols[None, :], mask=mask, other=0.0)
        acc += tile.to(tl.float32)
    total = tl.sum(acc, axis=0)
    if MEAN:
        total = total / tl.maximum(end - start, 1).to(tl.float32)
    out_row = out_ptr + row.to(tl.int64) * stride_out
    tl.store(out_row + cols, total.to(out_ptr.dtype.element_ty), mask=col_mask)
