"""swish_layer_norm: out = x * sigmoid(LN(x; weight, bias)) per row, in fp32, cast back once.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def swish_layer_norm_kernel(
    x_ptr,
    weight_ptr,
    bias_ptr,
    out_ptr,
    N,
    D,
    stride_x,
    stride_out,
    BLOCK_D: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
):
    """One program per BLOCK_ROWS consecutive rows, grid (cdiv(N, BLOCK_ROWS),).

    The whole [BLOCK_ROWS, BLOCK_D >= D] tile is loaded once: mean and variance (two-pass,
    on the registers, around the row's first item) in fp32, then the normalised, affine
    and swish-gated result is stored. Padding columns are 0 and masked out of the variance.
    """
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.arange(0, BLOCK_D)
    col_mask = cols < D
    mask = (rows < N)[:, None] & col_mask[None, :]
    rows = rows.to(tl.int64)
    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    weight = tl.load(weight_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    # Centred on the row's first item first: a constant row is then exactly 0 (not rounding
    # noise that rstd ~ 1/sqrt(eps) would amplify), and a large common offset cancels exactly.
    pivot = tl.load(x_ptr + rows * stride_x, mask=rows < N, other=0.0).to(tl.float32)
    shifted = tl.where(col_mask[None, :], x - pivot[:, None], 0.0)
    mean = tl.sum(shifted, axis=1) / D
    centered = tl.where(col_mask[None, :], shifted - mean[:, None], 0.0)
    var = tl.sum(centered * centered, axis=1) / D
    rstd = 1.0 / tl.sqrt(var + 1e-5)
    y = centered * rstd[:, None] * weight[None, :] + bias[None, :]
    out = x * (1.0 / (1.0 + tl.exp(-y)))
    tl.store(out_ptr + rows[:, None] * stride_out + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)
