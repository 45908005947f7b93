"""jagged_truncate: keep the first or the last min(len_b, N) items of every row.

Two launches: `jagged_truncate_offsets_kernel` (one program) writes the new offsets, the
exclusive scan of min(len_b, N); `jagged_truncate_kernel` then copies each row's kept items
to its new offset and zero-fills the rows of the output buffer past the new total.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_truncate_offsets_kernel(
    offsets_ptr,
    out_offsets_ptr,
    B,
    N,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program, grid (1,): out_offsets = [0, cumsum(min(len_b, N))].

    Walks the rows BLOCK_L * BLOCK_D at a time (the config's tile size, 1k-8k: the same
    register budget per thread as the copy), scanning each chunk with tl.cumsum and carrying
    its total into the next in int64.
    """
    CHUNK: tl.constexpr = BLOCK_L * BLOCK_D
    idx = tl.arange(0, CHUNK)
    zero = tl.zeros([CHUNK], dtype=tl.int64)
    tl.store(out_offsets_ptr + idx, zero.to(out_offsets_ptr.dtype.element_ty), mask=idx < 1)
    carry = tl.full([], 0, tl.int64)
    for first in range(0, B, CHUNK):
        rows = first + idx
        mask = rows < B
        start = tl.load(offsets_ptr + rows, mask=mask, other=0).to(tl.int64)
        end = tl.load(offsets_ptr + rows + 1, mask=mask, other=0).to(tl.int64)
        kept = tl.minimum(end - start, N)
        inclusive = tl.cumsum(kept, axis=0) + carry
        tl.store(out_offsets_ptr + 1 + rows, inclusive.to(out_offsets_ptr.dtype.element_ty), mask=mask)
        carry += tl.sum(kept, axis=0)


@triton.jit
def jagged_truncate_kernel(
    values_ptr,
    offsets_ptr,
    out_values_ptr,
    out_offsets_ptr,
    N,
    D,
    B,
    capacity,
    stride_values,
    stride_out,
    KEEP_LAST: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    Copies the row's kept items (the first, or with KEEP_LAST the last, min(len, N)) to its
    new offset in [BLOCK_L, BLOCK_D] tiles, then zero-fills its 1/B share of the output rows
    in [new total, capacity), so that every element of the buffer is written.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    # int64 before any address arithmetic: L * D may pass 2^31 at production shapes.
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    count = tl.minimum(end - start, N)
    if KEEP_LAST:
        source = end - count
    else:
        source = start
    dest = tl.load(out_offsets_ptr + row).to(tl.int64)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    for first in range(0, count, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < count)[:, None] & col_mask[None, :]
        tile = tl.load(values_ptr + (source + items)[:, None] * stride_values + cols[None, :], mask=mask)
        tl.store(out_values_ptr + (dest + items)[:, None] * stride_out + cols[None, :], tile, mask=mask)
    total = tl.load(out_offsets_ptr + B).to(tl.int64)
    share = (capacity - total + B - 1) // B
    tail_start = total + row.to(tl.int64) * share
    tail_end = tl.minimum(tail_start + share, capacity)
    zeros = tl.zeros([BLOCK_L, BLOCK_D], dtype=out_values_ptr.dtype.element_ty)
    for first in range(tail_start, tail_end, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < tail_end)[:, None] & col_mask[None, :]
        tl.store(out_values_ptr + items[:, None] * stride_out + cols[None, :], zeros, mask=mask)
