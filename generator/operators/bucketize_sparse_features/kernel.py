"""bucketize_sparse_features: fbgemm's (block_)bucketize_sparse_features in three launches.

1. count:   one program per BLOCK_R rows; new_lengths[p*R + r] = ids of row r that land in
            bucket p.
2. scan:    new_offsets = exclusive prefix sum of new_lengths (bucket-major), in three
            launches: local sums per block of BLOCK_R*BLOCK_L*BLOCK_S counts, one program
            carrying the block totals, and the carry added back per block (one program over
            all S*R counts was the whole cost).
3. scatter: one program per BLOCK_R rows; each id goes to new_offsets[p*R + r] + its rank
            among the row's earlier ids of bucket p, so ids keep their order within
            (bucket, row).

Buckets are handled BLOCK_S at a time as a one-hot [BLOCK_R, BLOCK_L, BLOCK_S] tile (counts are
its sums over items, ranks its cumsum over items); S > BLOCK_S walks the rows once per bucket
chunk. Several rows per program matter for short rows (26 features x 8192 samples of ~8 ids:
one program per row left most of each tile and most of the GPU idle).
This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def _bucketize(ids, blk, S, BLOCKED: tl.constexpr):
    """(bucket, new id) of int64 ids >= 0: modulo, or fbgemm's block rule with block size blk."""
    if BLOCKED:
        inblock = ids < blk * S
        safe = tl.maximum(blk, 1)
        bucket = tl.where(inblock, ids // safe, ids % S)
        new = tl.where(inblock, ids % safe, ids // S)
    else:
        bucket = ids % S
        new = ids // S
    return bucket, new


@triton.jit
def _rows_setup(offsets_ptr, block_sizes_ptr, rows, R, rows_per_feature, BLOCKED: tl.constexpr):
    """[BLOCK_R] vectors: each row's start and end in ids (start = end past R) and block size."""
    valid = rows < R
    start = tl.load(offsets_ptr + rows, mask=valid, other=0).to(tl.int64)
    end = tl.load(offsets_ptr + rows + 1, mask=valid, other=0).to(tl.int64)
    if BLOCKED:
        blk = tl.load(block_sizes_ptr + rows // rows_per_feature, mask=valid, other=0).to(tl.int64)
    else:
        blk = start * 0
    return start, end, blk


@triton.jit
def bucketize_count_kernel(
    ids_ptr,
    offsets_ptr,
    block_sizes_ptr,
    new_lengths_ptr,
    R,
    S,
    rows_per_feature,
    BLOCKED: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Grid (cdiv(R, BLOCK_R),): each of the program's rows' count per bucket, stored at
    new_lengths[p*R + r]."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    start, end, blk = _rows_setup(offsets_ptr, block_sizes_ptr, rows, R, rows_per_feature, BLOCKED)
    longest = tl.max(end - start, axis=0)
    for first_bucket in range(0, S, BLOCK_S):
        buckets = first_bucket + tl.arange(0, BLOCK_S)
        counts = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.int32)
        for first in range(0, longest, BLOCK_L):
            items = start[:, None] + first + tl.arange(0, BLOCK_L)[None, :]
            mask = items < end[:, None]
            ids = tl.load(ids_ptr + items, mask=mask, other=0)
            bucket, new = _bucketize(ids, blk[:, None], S, BLOCKED)
            hit = (bucket[:, :, None] == buckets[None, None, :]) & mask[:, :, None]
            counts += tl.sum(hit.to(tl.int32), axis=1)
        where = new_lengths_ptr + buckets.to(tl.int64)[None, :] * R + rows[:, None]
        tl.store(where, counts.to(new_lengths_ptr.dtype.element_ty), mask=(rows < R)[:, None] & (buckets < S)[None, :])


@triton.jit
def bucketize_scan_blocks_kernel(
    new_lengths_ptr,
    new_offsets_ptr,
    N,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Grid (cdiv(N, BLOCK_R * BLOCK_L * BLOCK_S),): each block's inclusive prefix sums of its counts,
    local to the block, at new_offsets[i+1]; program 0 also writes new_offsets[0] = 0."""
    first = tl.program_id(0).to(tl.int64) * (BLOCK_R * BLOCK_L * BLOCK_S)
    items = first + tl.arange(0, BLOCK_R * BLOCK_L * BLOCK_S)
    mask = items < N
    counts = tl.load(new_lengths_ptr + items, mask=mask, other=0).to(tl.int64)
    tl.store(new_offsets_ptr + items + 1, tl.cumsum(counts, axis=0).to(new_offsets_ptr.dtype.element_ty), mask=mask)
    tl.store(new_offsets_ptr + items, (counts * 0).to(new_offsets_ptr.dtype.element_ty), mask=items == 0)


@triton.jit
def bucketize_scan_carry_kernel(
    new_offsets_ptr,
    N,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Grid (1,): turns each block's last local sum (at new_offsets[min((j+1) * block, N)])
    into the global one, BLOCK_R * BLOCK_L * BLOCK_S blocks per step with an int64 carry."""
    blocks = tl.cdiv(N, BLOCK_R * BLOCK_L * BLOCK_S)
    carry = tl.sum(tl.zeros([BLOCK_R * BLOCK_L * BLOCK_S], dtype=tl.int64), axis=0)
    for first in range(0, blocks, BLOCK_R * BLOCK_L * BLOCK_S):
        js = first + tl.arange(0, BLOCK_R * BLOCK_L * BLOCK_S)
        ends = tl.minimum((js.to(tl.int64) + 1) * (BLOCK_R * BLOCK_L * BLOCK_S), N)
        mask = js < blocks
        local = tl.load(new_offsets_ptr + ends, mask=mask, other=0).to(tl.int64)
        tl.store(new_offsets_ptr + ends, (tl.cumsum(local, axis=0) + carry).to(new_offsets_ptr.dtype.element_ty), mask=mask)
        carry += tl.sum(local, axis=0)


@triton.jit
def bucketize_scan_add_kernel(
    new_offsets_ptr,
    N,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Grid (cdiv(N, BLOCK_R * BLOCK_L * BLOCK_S),): adds the sum of all earlier blocks (block j-1's
    global last sum, new_offsets[j * block]) to block j's local sums, its own last one
    excepted (the carry kernel made that one global). Program j reads only that entry of
    block j-1, which no program writes here."""
    j = tl.program_id(0).to(tl.int64)
    if j > 0:
        prefix = tl.load(new_offsets_ptr + j * (BLOCK_R * BLOCK_L * BLOCK_S)).to(tl.int64)
        items = j * (BLOCK_R * BLOCK_L * BLOCK_S) + tl.arange(0, BLOCK_R * BLOCK_L * BLOCK_S)
        last = tl.minimum((j + 1) * (BLOCK_R * BLOCK_L * BLOCK_S), N) - 1
        mask = items < last
        local = tl.load(new_offsets_ptr + items + 1, mask=mask, other=0).to(tl.int64)
        tl.store(new_offsets_ptr + items + 1, (local + prefix).to(new_offsets_ptr.dtype.element_ty), mask=mask)


@triton.jit
def bucketize_scatter_kernel(
    ids_ptr,
    offsets_ptr,
    block_sizes_ptr,
    new_offsets_ptr,
    new_ids_ptr,
    positions_ptr,
    R,
    S,
    rows_per_feature,
    BLOCKED: tl.constexpr,
    POSITIONS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Grid (cdiv(R, BLOCK_R),): the program's rows' ids (and positions) to their places in
    the bucket-major output."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    start, end, blk = _rows_setup(offsets_ptr, block_sizes_ptr, rows, R, rows_per_feature, BLOCKED)
    longest = tl.max(end - start, axis=0)
    for first_bucket in range(0, S, BLOCK_S):
        buckets = first_bucket + tl.arange(0, BLOCK_S)
        # next free slot of each (row, bucket) of this chunk of buckets
        slot = new_offsets_ptr + buckets.to(tl.int64)[None, :] * R + rows[:, None]
        base = tl.load(slot, mask=(rows < R)[:, None] & (buckets < S)[None, :], other=0).to(tl.int64)
        for first in range(0, longest, BLOCK_L):
            items = start[:, None] + first + tl.arange(0, BLOCK_L)[None, :]
            mask = items < end[:, None]
            ids = tl.load(ids_ptr + items, mask=mask, other=0)
            bucket, new = _bucketize(ids, blk[:, None], S, BLOCKED)
            hit = ((bucket[:, :, None] == buckets[None, None, :]) & mask[:, :, None]).to(tl.int32)
            rank = tl.cumsum(hit, axis=1) - 1  # among this tile's ids of the same row and bucket
            dest = tl.sum(hit.to(tl.int64) * (base[:, None, :] + rank.to(tl.int64)), axis=2)
            mine = tl.sum(hit, axis=2) > 0
            tl.store(new_ids_ptr + dest, new, mask=mine)
            if POSITIONS:
                tl.store(positions_ptr + dest, items - start[:, None], mask=mine)
            base += tl.sum(hit, axis=1).to(tl.int64)
