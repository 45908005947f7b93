"""jagged_sum: out[b] = sum(values[offsets[b]:offsets[b+1]]) (or the mean), fp32 accumulation;
optionally each item times its weight, and optionally the items gathered from a table first
(the embedding-bag variant: item i is table row indices[i]).

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_sum_kernel(
    values_ptr,
    offsets_ptr,
    weights_ptr,
    indices_ptr,
    out_ptr,
    D,
    stride_values,
    stride_out,
    MEAN: tl.constexpr,
    WEIGHTED: tl.constexpr,
    GATHER: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    The program walks its row BLOCK_L items at a time into a [BLOCK_L, BLOCK_D] fp32
    accumulator and reduces over L once at the end: a cross-thread reduction per tile would
    cost more than the extra registers. An empty row skips the loop and stores 0. With
    GATHER, values is the table and an item's row is read from indices; with WEIGHTED, each
    item is scaled by weights[item] (weights_ptr / indices_ptr are unread otherwise).
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
        item_mask = items < end
        if GATHER:
            sources = tl.load(indices_ptr + items, mask=item_mask, other=0).to(tl.int64)
        else:
            sources = items
        mask = item_mask[:, None] & col_mask[None, :]
        tile = tl.load(values_ptr + sources[:, None] * stride_values + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        if WEIGHTED:
            tile = tile * tl.load(weights_ptr + items, mask=item_mask, other=0.0).to(tl.float32)[:, None]
        acc += tile
    total = tl.sum(acc, axis=0)
    if MEAN:
        total = total / tl.maximum(end - start, 1).to(tl.float32)
    out_row = out_ptr + row.to(tl.int64) * stride_out
    tl.store(out_row + cols, total.to(out_ptr.dtype.element_ty), mask=col_mask)
