"""dlrm_dot_interaction_backward: the gradient of dlrm_dot_interaction. Per sample, with
T = cat(dense, sparse) [F+1, D] and S the symmetric (F+1)x(F+1) matrix holding the gradient
of pair (i, j) at [i, j] and [j, i] (zero diagonal), dT = S T; grad_dense = grad_out[:D] +
dT[0] and grad_sparse = dT[1:].

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def dlrm_dot_interaction_backward_kernel(
    dense_ptr,
    sparse_ptr,
    grad_out_ptr,
    grad_dense_ptr,
    grad_sparse_ptr,
    B,
    D,
    F,
    stride_dense,
    stride_sparse_b,
    stride_sparse_f,
    stride_grad_out,
    stride_grad_dense,
    stride_grad_sparse_b,
    stride_grad_sparse_f,
    BLOCK_F: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per ROWS_PER_PROGRAM consecutive samples, grid (cdiv(B, ROWS_PER_PROGRAM),).

    Per sample: S [BLOCK_F >= F+1, BLOCK_F] is gathered once from grad_out's pair columns
    (pair (lo, hi) at its torch.triu_indices position, for both [lo, hi] and [hi, lo]; the
    diagonal and padding are 0). Then, one BLOCK_D column slice at a time, T's slice
    [BLOCK_F, BLOCK_D] is loaded (row 0 the dense slice, rows 1..F the sparse slices, padding
    rows 0) and dT = S T is one tl.dot with fp32 accumulation, started from grad_out's dense
    slice in row 0 (so row 0 is grad_dense) and zeros elsewhere. Rows 1..F are stored to
    grad_sparse and row 0 to grad_dense, each element written once in the output dtype. S
    holds grad_out's own values, so for bf16/fp16 the MMA operands are exact. No atomics:
    each sample's gradient belongs to one program. (Vector access along D comes from the
    build's divisibility specialization of D and the strides, generator.evaluate.build.)
    """
    pid = tl.program_id(0)
    t_rows = tl.arange(0, BLOCK_F)
    is_dense = (t_rows == 0)[:, None]
    is_sparse = (t_rows >= 1) & (t_rows <= F)
    lo = tl.minimum(t_rows[:, None], t_rows[None, :])
    hi = tl.maximum(t_rows[:, None], t_rows[None, :])
    # Pairs before row lo of the strict upper triangle of an (F+1)^2 matrix: lo*F - lo*(lo-1)/2.
    pair = lo * F - (lo * (lo - 1)) // 2 + (hi - lo - 1)
    feature = (t_rows - 1).to(tl.int64)[:, None]  # row r of T is sparse feature r - 1
    for r in range(ROWS_PER_PROGRAM):
        sample = pid * ROWS_PER_PROGRAM + r
        # Past the last sample no column and no pair is below its limit, so nothing moves.
        # (Limits rather than `mask & (sample < B)`: the interpreter mis-types a scalar bool
        # broadcast into a block mask.)
        d_limit = tl.where(sample < B, D, 0)
        f_limit = tl.where(sample < B, F, 0)
        sample = sample.to(tl.int64)
        grad_row = grad_out_ptr + sample * stride_grad_out
        s = tl.load(grad_row + D + pair, mask=(lo < hi) & (hi <= f_limit), other=0.0)
        dense_row = dense_ptr + sample * stride_dense
        sparse_row = sparse_ptr + sample * stride_sparse_b
        grad_dense_row = grad_dense_ptr + sample * stride_grad_dense
        grad_sparse_row = grad_sparse_ptr + sample * stride_grad_sparse_b
        sparse_rows = sparse_row + feature * stride_sparse_f
        grad_sparse_rows = grad_sparse_row + feature * stride_grad_sparse_f
        grad_dense_rows = grad_dense_row + 0 * feature  # every row at grad_dense; row 0 stores
        # Separate loads and stores for the dense row and the sparse rows (rather than one
        # tile through selected pointers) keep every access contiguous along D: vectorized.
        for first in range(0, D, BLOCK_D):
            cols = first + tl.arange(0, BLOCK_D)
            col_mask = cols < d_limit
            sparse_mask = is_sparse[:, None] & col_mask[None, :]
            dense = tl.load(dense_row + cols, mask=col_mask, other=0.0)
            sparse = tl.load(sparse_rows + cols[None, :], mask=sparse_mask, other=0.0)
            t = tl.where(is_dense, dense[None, :], sparse)
            direct = tl.load(grad_row + cols, mask=col_mask, other=0.0).to(tl.float32)
            acc = tl.where(is_dense, direct[None, :], 0.0)
            if t.dtype == tl.float32:
                # fp32 products must be exact-ish: TF32 would be off by ~1e-3 relative.
                acc = tl.dot(s, t, acc, input_precision="ieee")
            else:
                acc = tl.dot(s, t, acc)
            acc = acc.to(grad_dense_ptr.dtype.element_ty)
            tl.store(grad_sparse_rows + cols[None, :], acc, mask=sparse_mask)
            tl.store(grad_dense_rows + cols[None, :], acc, mask=is_dense & col_mask[None, :])
