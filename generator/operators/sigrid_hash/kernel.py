"""sigrid_hash: floormod(hash_128_to_64(salt, twang_mix64(id)), M) in uint64 arithmetic.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def twang_mix64(k):
    """Folly's twang_mix64 on uint64: shifts on unsigned types are logical."""
    k = ~k + (k << 21)
    k = k ^ (k >> 24)
    k = k + (k << 3) + (k << 8)
    k = k ^ (k >> 14)
    k = k + (k << 2) + (k << 4)
    k = k ^ (k >> 28)
    k = k + (k << 31)
    return k


@triton.jit
def hash_128_to_64(upper, lower):
    """Folly's hash_128_to_64 on uint64 (the literal is above 2^63, so it is typed uint64)."""
    a = (lower ^ upper) * 0x9DDFEA08EB382D69
    a = a ^ (a >> 47)
    b = (upper ^ a) * 0x9DDFEA08EB382D69
    b = b ^ (b >> 47)
    b = b * 0x9DDFEA08EB382D69
    return b


@triton.jit
def sigrid_hash_kernel(
    ids_ptr,
    out_ptr,
    N,
    salt,
    M,
    multiplier,
    shift,
    BLOCK: tl.constexpr,
):
    """One program per BLOCK consecutive ids, grid (cdiv(N, BLOCK),).

    salt and M are runtime int64 scalars (one compiled kernel serves every feature table).
    M == 1 gives 0 and M <= 0 the raw int64 hash, as Velox does.

    The floor modulus uses no division: a runtime 64-bit divide is a long software routine
    on GPUs (it made this kernel compute-bound). As in Velox, the host passes Granlund-
    Montgomery magic numbers for M (`multiplier`, the uint64 bits as int64, and `shift`),
    so that for 0 <= x < 2^63, x // M == umulhi(x, multiplier) >> shift. A negative hash h
    is folded to x = ~h (= -h - 1) and back: floor(h / M) = ~(x // M).
    """
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    ids = tl.load(ids_ptr + offs, mask=mask, other=0)
    # `+ zeros` rather than .to(): Triton passes an int argument equal to 1 as a constexpr.
    zeros = tl.zeros([BLOCK], dtype=tl.int64)
    salt_bits = (salt + zeros).to(tl.uint64, bitcast=True)
    modulus = M + zeros
    hashed = hash_128_to_64(salt_bits, twang_mix64(ids.to(tl.int64).to(tl.uint64, bitcast=True)))
    hashed = hashed.to(tl.int64, bitcast=True)
    sign = hashed >> 63  # arithmetic: 0 or -1
    folded = (hashed ^ sign).to(tl.uint64, bitcast=True)
    quotient = tl.umulhi(folded, (multiplier + zeros).to(tl.uint64, bitcast=True)) >> shift
    quotient = quotient.to(tl.int64, bitcast=True) ^ sign
    rem = hashed - quotient * modulus
    out = tl.where(modulus > 1, rem, tl.where(modulus == 1, 0, hashed))
    tl.store(out_ptr + offs, out, mask=mask)
