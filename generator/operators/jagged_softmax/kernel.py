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


@triton.jit
def jagged_softmax_partial_kernel(
    values_ptr,
    offsets_ptr,
    partial_max_ptr,
    partial_sum_ptr,
    D,
    max_L,
    chunk,
    splits,
    stride_values,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Long rows, pass 1 of 2: one program per (row, BLOCK_D column slice, chunk of `chunk`
    kept items), grid (B, cdiv(D, BLOCK_D), splits). Writes the chunk's max and sum of
    exp(x - max) per column to partial_max / partial_sum [B, splits, D] (-inf and 0 for a
    chunk past the row's kept items), so that a long row is spread over many programs
    instead of walked by one."""
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    split = tl.program_id(2)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    kept_end = start + tl.minimum(end - start, max_L)
    first = start + split.to(tl.int64) * chunk
    last = tl.minimum(first + chunk, kept_end)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    chunk_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
    chunk_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    for tile in range(first, last, BLOCK_L):
        items = tile + tl.arange(0, BLOCK_L)
        item_mask = items < last
        x = tl.load(
            values_ptr + items[:, None] * stride_values + cols[None, :],
            mask=item_mask[:, None] & col_mask[None, :],
            other=0.0,
        ).to(tl.float32)
        x = tl.where(item_mask[:, None], x, float("-inf"))
        new_max = tl.maximum(chunk_max, tl.max(x, axis=0))
        chunk_sum = chunk_sum * tl.exp(chunk_max - new_max) + tl.sum(tl.exp(x - new_max[None, :]), axis=0)
        chunk_max = new_max
    at = (row.to(tl.int64) * splits + split) * D + cols
    tl.store(partial_max_ptr + at, chunk_max, mask=col_mask)
    tl.store(partial_sum_ptr + at, chunk_sum, mask=col_mask)


@triton.jit
def jagged_softmax_normalize_kernel(
    values_ptr,
    offsets_ptr,
    partial_max_ptr,
    partial_sum_ptr,
    out_ptr,
    D,
    max_L,
    chunk,
    splits,
    stride_values,
    stride_out,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Long rows, pass 2 of 2, same grid as pass 1: combine the row's `splits` partials (in
    split order, so every program of a row gets the same max and sum, bit for bit), then
    write exp(x - max) / sum over this program's chunk; the last chunk's program also writes
    the zeros past max_L."""
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    split = tl.program_id(2)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    kept_end = start + tl.minimum(end - start, max_L)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    row_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    base = row.to(tl.int64) * splits * D + cols
    for p in range(0, splits):
        part_max = tl.load(partial_max_ptr + base + p * D, mask=col_mask, other=float("-inf"))
        part_sum = tl.load(partial_sum_ptr + base + p * D, mask=col_mask, other=0.0)
        new_max = tl.maximum(row_max, part_max)
        # Where both maxima are -inf (nothing kept yet), exp(-inf - -inf) is NaN: scale by 0.
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        row_sum = row_sum * tl.exp(row_max - safe) + part_sum * tl.exp(part_max - safe)
        row_max = new_max
    inv_sum = 1.0 / tl.where(row_sum > 0, row_sum, 1.0)
    first = start + split.to(tl.int64) * chunk
    last = tl.minimum(first + chunk, kept_end)
    for tile in range(first, last, BLOCK_L):
        items = tile + tl.arange(0, BLOCK_L)
        mask = (items < last)[:, None] & col_mask[None, :]
        x = tl.load(values_ptr + items[:, None] * stride_values + cols[None, :], mask=mask, other=float("-inf"))
        y = tl.exp(x.to(tl.float32) - row_max[None, :]) * inv_sum[None, :]
        tl.store(out_ptr + items[:, None] * stride_out + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    if split == splits - 1:
        zeros = tl.zeros([BLOCK_L, BLOCK_D], dtype=out_ptr.dtype.element_ty)
        for tile in range(kept_end, end, BLOCK_L):
            items = tile + tl.arange(0, BLOCK_L)
            mask = (items < end)[:, None] & col_mask[None, :]
            tl.store(out_ptr + items[:, None] * stride_out + cols[None, :], zeros, mask=mask)
