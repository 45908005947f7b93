"""batched_dense_bucketize: out[b, f] = torch.bucketize(x[b, f], borders_f, right=False).

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def batched_dense_bucketize_kernel(
    x_ptr,
    border_values_ptr,
    border_offsets_ptr,
    out_ptr,
    B,
    F,
    stride_x,
    stride_out,
    BLOCK_B: tl.constexpr,
    BLOCK_F: tl.constexpr,
    PROBES: tl.constexpr,
):
    """One program per [BLOCK_B, BLOCK_F] tile of x, grid (cdiv(B, BLOCK_B), cdiv(F, BLOCK_F)).

    Every element runs its own lower-bound search over its feature's borders, PROBES-ary:
    each round gathers PROBES borders at once, splitting the element's [lo, hi] into
    PROBES + 1 parts, and keeps the part holding the answer. The rounds are dependent loads
    (latency, the whole cost at these sizes), so 8 probes need 2 rounds where a binary search
    (PROBES = 1) needs 7 for 64 borders, 4 where it needs 11 for 1024. The gathers hit the
    feature's few KB, in cache. The loop runs while any element of the tile has lo < hi.
    `not (border >= x)` counts as below, so a NaN x ends past every border, as
    torch.bucketize's lower bound does. Compared in fp32 (exact for fp16/bf16).
    """
    pid_b = tl.program_id(0)
    pid_f = tl.program_id(1)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    feats = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    row_mask = rows < B
    feat_mask = feats < F
    mask = row_mask[:, None] & feat_mask[None, :]
    rows64 = rows.to(tl.int64)
    x = tl.load(x_ptr + rows64[:, None] * stride_x + feats[None, :], mask=mask, other=0.0).to(tl.float32)
    first = tl.load(border_offsets_ptr + feats, mask=feat_mask, other=0).to(tl.int64)
    last = tl.load(border_offsets_ptr + feats + 1, mask=feat_mask, other=0).to(tl.int64)
    # positions within a feature's borders fit int32; addresses are int64
    lo = tl.zeros([BLOCK_B, BLOCK_F], dtype=tl.int32)
    hi = tl.zeros([BLOCK_B, BLOCK_F], dtype=tl.int32) + (last - first).to(tl.int32)[None, :]
    hi = tl.where(mask, hi, 0)
    base = first[None, :, None]
    after = tl.arange(0, PROBES)[None, None, :] + 1
    # Invariant: the answer (first border >= x, else n) is in [lo, hi].
    while tl.max(tl.max(hi - lo, axis=1), axis=0) > 0:
        active = lo < hi
        # hi - lo + 1 possible answers, split into PROBES + 1 parts of `step` (the last shorter)
        step = (hi - lo + 1 + PROBES) // (PROBES + 1)
        probe = lo[:, :, None] + after * step[:, :, None] - 1
        probed = active[:, :, None] & (probe < hi[:, :, None])
        border = tl.load(border_values_ptr + base + probe.to(tl.int64), mask=probed, other=0.0).to(tl.float32)
        # Sorted borders: the probes below x are a prefix, so their count says which part.
        below = tl.sum((probed & ((border >= x[:, :, None]) == 0)).to(tl.int32), axis=2)
        lo_next = lo + below * step
        hi = tl.where(active, tl.minimum(hi, lo_next + step - 1), hi)
        lo = tl.where(active, lo_next, lo)
    tl.store(out_ptr + rows64[:, None] * stride_out + feats[None, :], lo.to(tl.int64), mask=mask)
