"""Model profiles: the kernel keys each model needs, in one declarative place.

A serving host of model M on (platform, arch) asks for exactly these operators; `kreg demo`
and `kreg manifest --model` read them from here.
"""

from __future__ import annotations

from kreg.keys import OperatorSpec

PROFILES: dict[str, tuple[OperatorSpec, ...]] = {
    # MLPerf DLRM-DCNv2: hashed ids, pooled embeddings, the dot interaction (OPERATORS.md).
    "dlrm-v2": (
        OperatorSpec.parse("sigrid_hash@1{dtype=int64}"),
        # Row-wise sharded tables route ids with fbgemm's block bucketization (TorchRec).
        OperatorSpec.parse("bucketize_sparse_features@1{block=1,dtype=int64}"),
        # The 13 dense features bucketized by per-feature borders (OPERATORS.md row 3).
        OperatorSpec.parse("batched_dense_bucketize@1{F=13,dtype=fp32}"),
        OperatorSpec.parse("jagged_sum@1{D=128,dtype=fp32}"),
        OperatorSpec.parse("dlrm_dot_interaction@1{D=128,F=26,dtype=bf16}"),
        # dcn_lowrank_cross@1{N=3456,dtype=bf16,layers=3,r=512} belongs here too, but verifying
        # it in Triton's interpreter at N=3456, r=512 takes over five minutes on a 2-core host,
        # which breaks `kreg demo`'s budget; it joins once interpreted verification is bounded.
    ),
    # HSTU ranker: attention over jagged user histories (the rest of its suite comes with issue 4).
    "hstu-ranker": (
        OperatorSpec.parse("jagged_softmax@1{D=128,dtype=bf16}"),
        OperatorSpec.parse("hstu_attention@1{D=128,H=4,dtype=bf16}"),
        OperatorSpec.parse("jagged_truncate@1{D=512,dtype=bf16,keep=last}"),
        OperatorSpec.parse("jagged_to_padded_dense@1{D=512,dtype=bf16}"),
        OperatorSpec.parse("dense_to_jagged@1{D=512,dtype=bf16}"),
        OperatorSpec.parse("swish_layer_norm@1{D=512,dtype=bf16}"),
        OperatorSpec.parse("layer_norm_mul@1{D=512,act=silu,dtype=bf16}"),
    ),
}


def profile(model: str) -> tuple[OperatorSpec, ...]:
    try:
        return PROFILES[model]
    except KeyError:
        raise ValueError(f"no profile for model {model!r}; known: {', '.join(sorted(PROFILES))}") from None
