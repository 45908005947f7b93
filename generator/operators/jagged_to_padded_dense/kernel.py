"""jagged_to_padded_dense: out[b, i] = values[offsets[b] + i] for i < min(len_b, N), else the
padding value; out is [B, N, D].

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_to_padded_dense_kernel(
    values_ptr,
    offsets_ptr,
    out_ptr,
    N,
    D,
    padding_value,
    stride_values,
    stride_out_b,
    stride_out_n,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    Walks the N dense positions of its row in [BLOCK_L, BLOCK_D] tiles: a masked load of the
    row's items (padding where the row has ended) and a store of the whole tile, so rows
    longer than N are truncated and every output element is written once.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    count = tl.minimum(end - start, N)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    out_row = out_ptr + row.to(tl.int64) * stride_out_b
    for first in range(0, N, BLOCK_L):
        items = (first + tl.arange(0, BLOCK_L)).to(tl.int64)
        load_mask = (items < count)[:, None] & col_mask[None, :]
        tile = tl.load(
            values_ptr + (start + items)[:, None] * stride_values + cols[None, :],
            mask=load_mask,
            other=padding_value,
        )
        store_mask = (items < N)[:, None] & col_mask[None, :]
        tl.store(out_row + items[:, None] * stride_out_n + cols[None, :], tile.to(out_ptr.dtype.element_ty), mask=store_mask)
