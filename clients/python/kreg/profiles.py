"""Model profiles: the kernel keys each model needs and the shapes each is tuned on, in one
declarative place.

A serving host of model M on (platform, arch) asks for exactly these operators; `kreg demo`,
`kreg manifest --model` and `kreg warm` read them from here, and the registry gives a job
for a profiled (model, operator) the model's tuning shapes when its requester names none
(a miss on the read path never does). Shapes are the model's own production step, from the
sources OPERATORS.md names; an operator outside every profile is tuned on its template's
shapes (the OPERATORS.md row, which spans several models). A training job's profile adds the
backward operators of the differentiable ones (`profile(model, training=True)`), tuned on the
same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from kreg.keys import OperatorSpec
from kreg.model import TuningShape


@dataclass(frozen=True)
class ProfileKernel:
    operator: OperatorSpec
    tuning_shapes: tuple[TuningShape, ...]


def _kernel(operator: str, *shapes: dict[str, int]) -> ProfileKernel:
    return ProfileKernel(OperatorSpec.parse(operator), tuple(TuningShape(dims) for dims in shapes))


# MLPerf DLRM-DCNv2: 8192 samples per GPU step, 26 sparse features (214 ids per sample,
# tables of up to 40M rows), 13 dense features, embeddings of 128, a 3-layer rank-512 cross
# network over the 3456-wide interaction input.
_DLRM_V2 = (
    _kernel("sigrid_hash@1{dtype=int64}", {"N": 214 * 8192, "M": 40_000_000, "salt": 0}),
    # Row-wise sharded tables route ids with fbgemm's block bucketization (TorchRec), 8 shards.
    _kernel(
        "bucketize_sparse_features@1{block=1,dtype=int64}",
        {"T": 26, "B": 8192, "len_min": 0, "len_max": 16, "S": 8, "id_max": 40_000_000},
    ),
    # The 13 dense features bucketized by per-feature borders (OPERATORS.md row 3).
    _kernel(
        "batched_dense_bucketize@1{F=13,dtype=fp32}",
        {"B": 8192, "F": 13, "n_min": 16, "n_max": 64},
        {"B": 8192, "F": 13, "n_min": 256, "n_max": 1024},
    ),
    # Pooling of the 26 features' bags (rows = features x samples), short and long bags.
    _kernel(
        "jagged_sum@1{D=128,dtype=fp32}",
        {"B": 26 * 2048, "D": 128, "len_min": 0, "len_max": 40},
        {"B": 26 * 512, "D": 128, "len_min": 0, "len_max": 40},
    ),
    _kernel("dlrm_dot_interaction@1{D=128,F=26,dtype=bf16}", {"B": 8192, "F": 26, "D": 128}, {"B": 16384, "F": 26, "D": 128}),
    _kernel(
        "dcn_lowrank_cross@1{N=3456,dtype=bf16,layers=3,r=512}",
        {"B": 8192, "N": 3456, "r": 512, "layers": 3},
        {"B": 16384, "N": 3456, "r": 512, "layers": 3},
    ),
)

# An HSTU ranker (generative-recommenders): jagged user histories of up to 4096 events with
# embeddings of 512, truncated and padded around 4 heads of 128-wide attention with 20
# targets per row, swish/LN-mul norms over the tokens.
_HSTU_HISTORY = {"B": 512, "D": 512, "len_min": 0, "len_max": 4096, "N": 4096}
_HSTU_RANKER = (
    _kernel("jagged_softmax@1{D=128,dtype=bf16}", {"B": 512, "D": 128, "len_min": 0, "len_max": 1024, "max_L": 1024}),
    _kernel(
        "hstu_attention@1{D=128,H=4,dtype=bf16}",
        {"B": 512, "H": 4, "D": 128, "N": 1024, "len_min": 921, "len_max": 1023, "targets": 20},
        # The padded reference holds [B, H, N, N] fp32 scores: at N 4096 the batch shrinks.
        {"B": 32, "H": 4, "D": 128, "N": 4096, "len_min": 3686, "len_max": 4095, "targets": 20},
    ),
    _kernel("jagged_truncate@1{D=512,dtype=bf16,keep=last}", {"B": 256, "D": 512, "len_min": 0, "len_max": 8192, "N": 4096}),
    _kernel("jagged_to_padded_dense@1{D=512,dtype=bf16}", {**_HSTU_HISTORY, "pad_milli": 0}),
    _kernel("dense_to_jagged@1{D=512,dtype=bf16}", _HSTU_HISTORY),
    _kernel("swish_layer_norm@1{D=512,dtype=bf16}", {"N": 1048576, "D": 512}),
    _kernel("layer_norm_mul@1{D=512,act=silu,dtype=bf16}", {"N": 1048576, "D": 512}),
)

PROFILES: dict[str, tuple[ProfileKernel, ...]] = {"dlrm-v2": _DLRM_V2, "hstu-ranker": _HSTU_RANKER}


def profile(model: str, *, training: bool = False) -> tuple[OperatorSpec, ...]:
    """The operators model `model` needs; with `training`, each differentiable operator's
    backward operator right after it (kreg.ops.backward: a training job needs both, a
    serving host only the forward). ValueError naming the known models otherwise."""
    from kreg.ops.backward import backward_spec

    try:
        forward = tuple(k.operator for k in PROFILES[model])
    except KeyError:
        raise ValueError(f"no profile for model {model!r}; known: {', '.join(sorted(PROFILES))}") from None
    if not training:
        return forward
    return tuple(spec for op in forward for spec in (op, backward_spec(op)) if spec is not None)


def tuning_shapes(model: str, operator: OperatorSpec) -> tuple[TuningShape, ...]:
    """The shapes model `model` tunes `operator` on (a backward operator: its forward's, whose
    dims it takes); () when no profile names the pair."""
    from kreg.ops.backward import forward_spec

    operator = forward_spec(operator) or operator
    return next((k.tuning_shapes for k in PROFILES.get(model, ()) if k.operator == operator), ())
