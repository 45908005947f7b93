"""dlrm_dot_interaction: out[b] = cat(dense[b], triu(T Tᵀ, 1)) with T = cat(dense[b], sparse[b]).

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def dlrm_dot_interaction_kernel(
    dense_ptr,
    sparse_ptr,
    out_ptr,
    B,
    D,
    F,
    stride_dense,
    stride_sparse_b,
    stride_sparse_f,
    stride_out,
    BLOCK_F: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program per ROWS_PER_PROGRAM consecutive samples, grid (cdiv(B, ROWS_PER_PROGRAM),).

    Per sample: T [BLOCK_F >= F+1, D] is built one BLOCK_D slice at a time (row 0 the dense
    slice, rows 1..F the sparse slices, padding rows 0), the Gram matrix accumulates with
    tl.dot in fp32, and the dense slice is copied to the output on the way. The strict upper
    triangle is then scattered to its torch.triu_indices position. Padding rows give zero
    products and are masked at the store.
    """
    pid = tl.program_id(0)
    t_rows = tl.arange(0, BLOCK_F)
    is_dense = t_rows == 0
    is_sparse = (t_rows >= 1) & (t_rows <= F)
    # Pairs before row i of the strict upper triangle of an (F+1)^2 matrix: i*F - i*(i-1)/2.
    i = t_rows[:, None]
    j = t_rows[None, :]
    pair = i * F - (i * (i - 1)) // 2 + (j - i - 1)
    for r in range(ROWS_PER_PROGRAM):
        sample = pid * ROWS_PER_PROGRAM + r
        # Past the last sample no column and no pair is below its limit, so nothing moves.
        # (Limits rather than `mask & (sample < B)`: the interpreter mis-types a scalar bool
        # broadcast into a block mask.)
        d_limit = tl.where(sample < B, D, 0)
        pair_mask = (i < j) & (j <= tl.where(sample < B, F, 0))
        sample = sample.to(tl.int64)
        dense_row = dense_ptr + sample * stride_dense
        sparse_rows = sparse_ptr + sample * stride_sparse_b + (t_rows - 1)[:, None] * stride_sparse_f
        out_row = out_ptr + sample * stride_out
        gram = tl.zeros([BLOCK_F, BLOCK_F], dtype=tl.float32)
        for first in range(0, D, BLOCK_D):
            cols = first + tl.arange(0, BLOCK_D)
            col_mask = cols < d_limit
            dense = tl.load(dense_row + cols, mask=col_mask, other=0.0)
            tl.store(out_row + cols, dense, mask=col_mask)
            sparse = tl.load(
                sparse_rows + cols[None, :], mask=is_sparse[:, None] & col_mask[None, :], other=0.0
            )
            t = tl.where(is_dense[:, None], dense[None, :], sparse)
            if t.dtype == tl.float32:
                # fp32 products must be exact-ish: TF32 would be off by ~1e-3 relative.
                gram = tl.dot(t, tl.trans(t), gram, input_precision="ieee")
            else:
                gram = tl.dot(t, tl.trans(t), gram)
        tl.store(out_row + D + pair, gram.to(out_ptr.dtype.element_ty), mask=pair_mask)
