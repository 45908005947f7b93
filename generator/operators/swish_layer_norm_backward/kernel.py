"""swish_layer_norm_backward and layer_norm_mul_backward: the gradients of the row
layer-norm operators (swish_layer_norm: out = x * sigmoid(y); layer_norm_mul:
out = act(u) * y; y = LN(x; weight, bias) = x_hat * weight + bias, x_hat = (x - mean) * rstd,
eps 1e-5), in fp32, each output rounded to its dtype once.

Both operators share this file (layer_norm_mul_backward's template points here) and its
two kernels: the row kernel (SWISH picks the operator) and the reduce kernel. Per row,
with dy the gradient reaching y:
    grad_x = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)),  dx_hat = dy * weight
(plus grad_out * sigmoid(y) for swish, whose x also multiplies the gate), and over all rows
    grad_weight = sum(dy * x_hat),  grad_bias = sum(dy).
Mean and rstd are recomputed from x, the way the forward kernels compute them. The column
sums over rows are deterministic: a bounded grid of programs each sums its own rows into a
partial row of a scratch buffer, and a second launch adds the partials up in a fixed order.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def layer_norm_backward_kernel(
    x_ptr,
    u_ptr,
    weight_ptr,
    bias_ptr,
    grad_out_ptr,
    grad_x_ptr,
    grad_u_ptr,
    partial_weight_ptr,
    partial_bias_ptr,
    N,
    D,
    stride_x,
    stride_u,
    stride_grad_out,
    stride_grad_x,
    stride_grad_u,
    stride_partial,
    SWISH: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    PROGRAMS_PER_SM: tl.constexpr,
):
    """SWISH: swish_layer_norm's gradient (u_ptr / grad_u_ptr and their strides are unread);
    else layer_norm_mul's, with dy = grad_out * act(u) and grad_u = grad_out * y * act'(u)
    (ACT: 0 none, 1 sigmoid, 2 silu).

    grid (P,), P = min(cdiv(N, BLOCK_ROWS), PROGRAMS_PER_SM x the SMs) (the launch plan reads
    PROGRAMS_PER_SM; the kernel takes its grid from tl.num_programs). Program p takes the row
    blocks p, p + P, p + 2P, ... ([BLOCK_ROWS, BLOCK_D >= D] tiles of x, grad_out (and u),
    loaded once), writes their grad_x (and grad_u) and adds their weight and bias gradients
    into fp32 registers, stored at the end as row p of the partial buffers [P, D] (every
    program has at least one block, so every row of the grid is written).

    Mean and rstd as the forward computes them: two-pass, around the row's first item (a
    constant row is exactly 0, a large common offset cancels exactly); padding columns of
    x_hat are 0, and so is dy there (grad_out loads 0), so they add nothing to the sums.
    """
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK_ROWS
    cols = tl.arange(0, BLOCK_D)
    col_mask = cols < D
    weight = tl.load(weight_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    sum_weight = tl.zeros([BLOCK_ROWS, BLOCK_D], dtype=tl.float32)
    sum_bias = tl.zeros([BLOCK_ROWS, BLOCK_D], dtype=tl.float32)
    for first in range(pid * BLOCK_ROWS, N, step):
        rows = first + tl.arange(0, BLOCK_ROWS)
        row_mask = rows < N
        rows = rows.to(tl.int64)
        mask = row_mask[:, None] & col_mask[None, :]
        x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        g = tl.load(grad_out_ptr + rows[:, None] * stride_grad_out + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        pivot = tl.load(x_ptr + rows * stride_x, mask=row_mask, other=0.0).to(tl.float32)
        shifted = tl.where(col_mask[None, :], x - pivot[:, None], 0.0)
        mean = tl.sum(shifted, axis=1) / D
        centered = tl.where(col_mask[None, :], shifted - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=1) / D + 1e-5)
        x_hat = centered * rstd[:, None]
        y = x_hat * weight[None, :] + bias[None, :]
        if SWISH:
            # out = x * sigmoid(y): x reaches out directly and through y.
            gate = 1.0 / (1.0 + tl.exp(-y))
            dy = g * x * gate * (1.0 - gate)
            direct = g * gate
        else:
            u = tl.load(u_ptr + rows[:, None] * stride_u + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            if ACT == 1:
                gate = 1.0 / (1.0 + tl.exp(-u))
                slope = gate * (1.0 - gate)
            elif ACT == 2:
                sig = 1.0 / (1.0 + tl.exp(-u))
                gate = u * sig
                slope = sig * (1.0 + u * (1.0 - sig))
            else:
                gate = u
                slope = 1.0
            grad_u = g * y * slope
            tl.store(grad_u_ptr + rows[:, None] * stride_grad_u + cols[None, :], grad_u.to(grad_u_ptr.dtype.element_ty), mask=mask)
            dy = g * gate
            direct = 0.0
        # Through LN: rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
        dx_hat = dy * weight[None, :]
        mean_dx_hat = tl.sum(dx_hat, axis=1) / D
        mean_dx_hat_x_hat = tl.sum(dx_hat * x_hat, axis=1) / D
        grad_x = direct + rstd[:, None] * (dx_hat - mean_dx_hat[:, None] - x_hat * mean_dx_hat_x_hat[:, None])
        tl.store(grad_x_ptr + rows[:, None] * stride_grad_x + cols[None, :], grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
        sum_weight += dy * x_hat
        sum_bias += dy
    offset = pid.to(tl.int64) * stride_partial + cols
    tl.store(partial_weight_ptr + offset, tl.sum(sum_weight, axis=0), mask=col_mask)
    tl.store(partial_bias_ptr + offset, tl.sum(sum_bias, axis=0), mask=col_mask)


@triton.jit
def layer_norm_backward_reduce_kernel(
    partial_weight_ptr,
    partial_bias_ptr,
    grad_weight_ptr,
    grad_bias_ptr,
    P,
    D,
    stride_partial,
    BLOCK_ROWS: tl.constexpr,
    PROGRAMS_PER_SM: tl.constexpr,
    REDUCE_P: tl.constexpr,
    REDUCE_D: tl.constexpr,
):
    """grid (cdiv(D, REDUCE_D),): column block c sums rows 0..P-1 of both partial buffers,
    REDUCE_P rows at a time, in a fixed order, and stores grad_weight and grad_bias there
    (zeros when P = 0: no rows). BLOCK_ROWS and PROGRAMS_PER_SM are the config's, unused
    here."""
    cols = tl.program_id(0) * REDUCE_D + tl.arange(0, REDUCE_D)
    col_mask = cols < D
    sum_weight = tl.zeros([REDUCE_P, REDUCE_D], dtype=tl.float32)
    sum_bias = tl.zeros([REDUCE_P, REDUCE_D], dtype=tl.float32)
    for first in range(0, P, REDUCE_P):
        rows = (first + tl.arange(0, REDUCE_P)).to(tl.int64)
        mask = (rows < P)[:, None] & col_mask[None, :]
        offsets = rows[:, None] * stride_partial + cols[None, :]
        sum_weight += tl.load(partial_weight_ptr + offsets, mask=mask, other=0.0)
        sum_bias += tl.load(partial_bias_ptr + offsets, mask=mask, other=0.0)
    tl.store(grad_weight_ptr + cols, tl.sum(sum_weight, axis=0).to(grad_weight_ptr.dtype.element_ty), mask=col_mask)
    tl.store(grad_bias_ptr + cols, tl.sum(sum_bias, axis=0).to(grad_bias_ptr.dtype.element_ty), mask=col_mask)
