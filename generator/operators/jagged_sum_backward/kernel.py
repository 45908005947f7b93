"""jagged_sum_backward: the gradient of jagged_sum. Every item of row b gets grad_out[b]
(over the row's length for the mean, times its weight when weighted); a weighted item's
weight gets the dot product of grad_out[b] with its value, over the whole width.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_sum_backward_kernel(
    grad_out_ptr,
    values_ptr,
    offsets_ptr,
    weights_ptr,
    grad_values_ptr,
    grad_weights_ptr,
    D,
    stride_grad_out,
    stride_values,
    stride_grad_values,
    MEAN: tl.constexpr,
    WEIGHTED: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Unweighted: one program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)),
    which loads its slice of grad_out[b] once and writes it to the row's items BLOCK_L at a
    time. Weighted: one program per row, grid (B, 1), walking the column slices for each
    block of items, so that the weight gradient's dot product stays in one program (no
    atomics: results are bit-identical run to run). values_ptr is read only when weighted;
    weights_ptr / grad_weights_ptr are unread otherwise."""
    row = tl.program_id(0)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    scale = 1.0
    if MEAN:
        scale = 1.0 / tl.maximum(end - start, 1).to(tl.float32)
    g_row = grad_out_ptr + row.to(tl.int64) * stride_grad_out
    if WEIGHTED:
        for first in range(start, end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            item_mask = items < end
            w = tl.load(weights_ptr + items, mask=item_mask, other=0.0).to(tl.float32)
            dot = tl.zeros([BLOCK_L], dtype=tl.float32)
            for col in range(0, D, BLOCK_D):
                cols = col + tl.arange(0, BLOCK_D)
                col_mask = cols < D
                g = tl.load(g_row + cols, mask=col_mask, other=0.0).to(tl.float32)
                mask = item_mask[:, None] & col_mask[None, :]
                x = tl.load(values_ptr + items[:, None] * stride_values + cols[None, :], mask=mask, other=0.0)
                dot += tl.sum(x.to(tl.float32) * g[None, :], axis=1)
                tile = w[:, None] * g[None, :]
                tl.store(
                    grad_values_ptr + items[:, None] * stride_grad_values + cols[None, :],
                    tile.to(grad_values_ptr.dtype.element_ty),
                    mask=mask,
                )
            tl.store(grad_weights_ptr + items, dot.to(grad_weights_ptr.dtype.element_ty), mask=item_mask)
    else:
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_mask = cols < D
        g = (tl.load(g_row + cols, mask=col_mask, other=0.0).to(tl.float32) * scale).to(grad_values_ptr.dtype.element_ty)
        tile = tl.broadcast_to(g[None, :], [BLOCK_L, BLOCK_D])
        for first in range(start, end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            mask = (items < end)[:, None] & col_mask[None, :]
            tl.store(grad_values_ptr + items[:, None] * stride_grad_values + cols[None, :], tile, mask=mask)
