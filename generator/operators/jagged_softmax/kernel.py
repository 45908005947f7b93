"""jagged_softmax: softmax over each row's first max_L items, per column; 0 past max_L.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_softmax_kernel(
    values_ptr,
    offsets_ptr,
    out_ptr,
    D,
    max_L,
    stride_values,
    stride_out,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)).

    A kept row that fits one BLOCK_L tile is read once. A longer one: pass 1 reads the kept
    items with an online max/sum (the running sum is rescaled when the max grows), pass 2
    reads them again and writes exp(x - max) / sum. Then items past max_L are written 0.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    kept_end = start + tl.minimum(end - start, max_L)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D

    if kept_end - start <= BLOCK_L:
        # The whole kept row is one tile: read it once and write it (most rows of a short-row
        # batch; the two passes below would read it twice and compute every exp twice).
        items = start + tl.arange(0, BLOCK_L)
        mask = (items < kept_end)[:, None] & col_mask[None, :]
        x = tl.load(
            values_ptr + items[:, None] * stride_values + cols[None, :], mask=mask, other=float("-inf")
        ).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0)[None, :])
        y = e / tl.sum(e, axis=0)[None, :]
        tl.store(out_ptr + items[:, None] * stride_out + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        row_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
        row_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
        for first in range(start, kept_end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            item_mask = items < kept_end
            x = tl.load(
                values_ptr + items[:, None] * stride_values + cols[None, :],
                mask=item_mask[:, None] & col_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            # -inf only on missing items: masked-off columns stay finite, so no inf - inf there.
            x = tl.where(item_mask[:, None], x, float("-inf"))
            new_max = tl.maximum(row_max, tl.max(x, axis=0))
            row_sum = row_sum * tl.exp(row_max - new_max) + tl.sum(tl.exp(x - new_max[None, :]), axis=0)
            row_max = new_max

        # An empty (or fully truncated) row has sum 0 and skips pass 2; avoid computing 1/0.
        inv_sum = 1.0 / tl.where(row_sum > 0, row_sum, 1.0)
        for first in range(start, kept_end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            mask = (items < kept_end)[:, None] & col_mask[None, :]
            # other=-inf: masked lanes compute exp(-inf) = 0, not an out-of-range value to cast.
            x = tl.load(
                values_ptr + items[:, None] * stride_values + cols[None, :], mask=mask, other=float("-inf")
            )
            y = tl.exp(x.to(tl.float32) - row_max[None, :]) * inv_sum[None, :]
            tl.store(
                out_ptr + items[:, None] * stride_out + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask
            )

    zeros = tl.zeros([BLOCK_L, BLOCK_D], dtype=out_ptr.dtype.element_ty)
    for first in range(kept_end, end, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < end)[:, None] & col_mask[None, :]
        tl.store(out_ptr + items[:, None] * stride_out + cols[None, :], zeros, mask=mask)
