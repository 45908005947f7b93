"""dense_to_jagged: values[offsets[b] + i] = dense[b, i] for i < N, 0 for i >= N.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def dense_to_jagged_kernel(
    dense_ptr,
    offsets_ptr,
    out_ptr,
    N,
    D,
    stride_dense_b,
    stride_dense_n,
    stride_out,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    Walks the row's len_b items in [BLOCK_L, BLOCK_D] tiles, reading dense positions < N and
    writing 0 past them (a row longer than the dense tensor), so every item is written.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    dense_row = dense_ptr + row.to(tl.int64) * stride_dense_b
    for first in range(0, end - start, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < end - start)[:, None] & col_mask[None, :]
        tile = tl.load(
            dense_row + items[:, None] * stride_dense_n + cols[None, :],
            mask=mask & (items < N)[:, None],
            other=0.0,
        )
        tl.store(out_ptr + (start + items)[:, None] * stride_out + cols[None, :], tile, mask=mask)
