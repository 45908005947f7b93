"""jagged_softmax_backward: the gradient of jagged_softmax. Within each row's first max_L
items, per column, y = softmax(x) and grad_x = y * (g - sum_over_row(g * y)); items past
max_L get 0 (the forward's output there is a constant 0). y is recomputed from the values.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_softmax_backward_kernel(
    grad_out_ptr,
    values_ptr,
    offsets_ptr,
    grad_values_ptr,
    D,
    max_L,
    stride_grad_out,
    stride_values,
    stride_grad_values,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per (row, BLOCK_D column slice), grid (B, cdiv(D, BLOCK_D)); every
    statistic is per column, so programs are independent (no atomics, bit-identical reruns).

    A kept row that fits one BLOCK_L tile reads x and g once and writes grad_x. A longer one:
    pass 1 reads x and g tile by tile with an online max m, sum of exp s = sum(exp(x - m)) and
    t = sum(g * exp(x - m)) (both rescaled by exp(m_old - m_new) when the max grows), so that
    sum(g * y) = t / s without a separate pass; pass 2 reads them again and writes
    y * (g - t / s) with y = exp(x - m) / s. Then items past max_L are written 0.
    """
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    kept_end = start + tl.minimum(end - start, max_L)
    cols = col_block * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    g_base = grad_out_ptr + cols[None, :]
    x_base = values_ptr + cols[None, :]
    out_base = grad_values_ptr + cols[None, :]

    if kept_end - start <= BLOCK_L:
        # The whole kept row is one tile: x and g are read once (most rows of a short-row batch).
        items = start + tl.arange(0, BLOCK_L)
        item_mask = items < kept_end
        mask = item_mask[:, None] & col_mask[None, :]
        # x: 0 where masked, then -inf on missing items only, so that masked-off columns stay
        # finite (no inf - inf there) and missing items get exp(-inf) = 0.
        x = tl.load(x_base + items[:, None] * stride_values, mask=mask, other=0.0).to(tl.float32)
        x = tl.where(item_mask[:, None], x, float("-inf"))
        g = tl.load(g_base + items[:, None] * stride_grad_out, mask=mask, other=0.0).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0)[None, :])
        y = e / tl.sum(e, axis=0)[None, :]
        dot = tl.sum(g * y, axis=0)
        grad = y * (g - dot[None, :])
        tl.store(
            out_base + items[:, None] * stride_grad_values,
            grad.to(grad_values_ptr.dtype.element_ty),
            mask=mask,
        )
    else:
        row_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
        row_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
        row_dot = tl.zeros([BLOCK_D], dtype=tl.float32)
        for first in range(start, kept_end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            item_mask = items < kept_end
            mask = item_mask[:, None] & col_mask[None, :]
            x = tl.load(x_base + items[:, None] * stride_values, mask=mask, other=0.0).to(tl.float32)
            x = tl.where(item_mask[:, None], x, float("-inf"))
            g = tl.load(g_base + items[:, None] * stride_grad_out, mask=mask, other=0.0).to(tl.float32)
            new_max = tl.maximum(row_max, tl.max(x, axis=0))
            scale = tl.exp(row_max - new_max)  # 0 on the first tile (row_max -inf, new_max finite)
            p = tl.exp(x - new_max[None, :])
            row_sum = row_sum * scale + tl.sum(p, axis=0)
            row_dot = row_dot * scale + tl.sum(g * p, axis=0)
            row_max = new_max

        # This branch has more than BLOCK_L kept items: row_sum >= 1 on every column.
        inv_sum = 1.0 / row_sum
        dot = row_dot * inv_sum
        for first in range(start, kept_end, BLOCK_L):
            items = first + tl.arange(0, BLOCK_L)
            mask = (items < kept_end)[:, None] & col_mask[None, :]
            # other=-inf: masked lanes compute exp(-inf) = 0, not an out-of-range value.
            x = tl.load(x_base + items[:, None] * stride_values, mask=mask, other=float("-inf"))
            x = x.to(tl.float32)
            g = tl.load(g_base + items[:, None] * stride_grad_out, mask=mask, other=0.0).to(tl.float32)
            y = tl.exp(x - row_max[None, :]) * inv_sum[None, :]
            grad = y * (g - dot[None, :])
            tl.store(
                out_base + items[:, None] * stride_grad_values,
                grad.to(grad_values_ptr.dtype.element_ty),
                mask=mask,
            )

    zeros = tl.zeros([BLOCK_L, BLOCK_D], dtype=grad_values_ptr.dtype.element_ty)
    for first in range(kept_end, end, BLOCK_L):
        items = first + tl.arange(0, BLOCK_L)
        mask = (items < end)[:, None] & col_mask[None, :]
        tl.store(out_base + items[:, None] * stride_grad_values, zeros, mask=mask)
