"""Launch plans: how each operator's kernels are called, by operator name (a plain dict).

A plan is the operator's calling convention: which outputs to allocate for a set of inputs,
and which kernels to launch with which runtime arguments and grid for a config. Serving
hosts need it to run a served artifact (kreg.ops.loaded) and the generator's templates use
the same functions to build, verify and time candidates, so the two cannot drift.

Inputs and outputs are dicts of tensors and ints named as in each operator's template
(generator/operators/<name>/__init__.py documents params, inputs and outputs). torch is
imported inside the functions that allocate; `launches` only reads shapes and strides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params, next_power_of_2

if TYPE_CHECKING:
    import torch

AllocateOutputs = Callable[[Params, Mapping[str, Any]], "dict[str, torch.Tensor]"]
Launches = Callable[[Params, Config, Mapping[str, Any], Mapping[str, Any]], list[KernelLaunch]]


@dataclass(frozen=True)
class LaunchPlan:
    allocate_outputs: AllocateOutputs
    launches: Launches


# --- sigrid_hash ----------------------------------------------------------------------------


def sigrid_hash_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    ids = inputs["ids"]
    return {"out": torch.empty(ids.shape, dtype=torch.int64, device=ids.device)}


def division_magic(divisor: int) -> tuple[int, int]:
    """(m, s) with x // divisor == (x * m) >> (64 + s) for every 0 <= x < 2^63, m < 2^64.

    Granlund & Montgomery, "Division by invariant integers using multiplication" (1994),
    choose_multiplier with N = 64 and precision 63 (the numerator is a folded int64, so it
    has 63 bits): the multiplier then fits 64 bits. Velox computes the same pair.
    """
    if not 2 <= divisor < 2**63:
        raise ValueError(f"divisor must be in [2, 2^63), got {divisor}")
    shift = (divisor - 1).bit_length()  # ceil(log2(divisor))
    low = (1 << (64 + shift)) // divisor
    high = ((1 << (64 + shift)) + (1 << (shift + 1))) // divisor
    while low // 2 < high // 2 and shift > 0:
        low, high, shift = low // 2, high // 2, shift - 1
    return high, shift


def _as_int64(value: int) -> int:
    """The int64 with the bits of a uint64, so that Triton types the argument as a signed int."""
    return value - (1 << 64) if value >= 1 << 63 else value


def sigrid_hash_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    ids, out = inputs["ids"], outputs["out"]
    if not (ids.is_contiguous() and out.is_contiguous()):
        raise ValueError("sigrid_hash needs contiguous ids and output")
    for name in ("salt", "M"):
        if not -(2**63) <= inputs[name] < 2**63:
            raise ValueError(f"{name}={inputs[name]} does not fit int64")
    count = ids.numel()
    block = config.constexprs["BLOCK"]
    multiplier, shift = division_magic(inputs["M"]) if inputs["M"] > 1 else (0, 0)
    return [
        KernelLaunch(
            entry_point="sigrid_hash_kernel",
            args=(ids, out, count, inputs["salt"], inputs["M"], _as_int64(multiplier), shift),
            grid=(-(-count // block),),
        )
    ]


# --- jagged_sum -----------------------------------------------------------------------------


def jagged_sum_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    values, offsets = inputs["values"], inputs["offsets"]
    return {
        "out": torch.empty(offsets.numel() - 1, values.shape[1], dtype=values.dtype, device=values.device)
    }


def jagged_sum_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """One launch; `values` is the table when `gather=1` (item i is its row indices[i]),
    `weights` [L] scale the items when `weighted=1`."""
    values, offsets, out = inputs["values"], inputs["offsets"], outputs["out"]
    if values.stride(1) != 1 or out.stride(1) != 1:
        raise ValueError("jagged_sum needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_sum needs contiguous offsets")
    weighted, gather = params.get("weighted", "0") == "1", params.get("gather", "0") == "1"
    weights = inputs["weights"] if weighted else offsets  # unread without WEIGHTED
    indices = inputs["indices"] if gather else offsets  # unread without GATHER
    if any(t.numel() > 1 and t.stride(0) != 1 for t in (weights, indices)):
        raise ValueError("jagged_sum needs contiguous weights and indices")
    rows, width = offsets.numel() - 1, values.shape[1]
    block_d = config.constexprs["BLOCK_D"]
    return [
        KernelLaunch(
            entry_point="jagged_sum_kernel",
            args=(values, offsets, weights, indices, out, width, values.stride(0), out.stride(0)),
            grid=(rows, -(-width // block_d)),
            constexprs={"MEAN": params.get("mean", "0") == "1", "WEIGHTED": weighted, "GATHER": gather},
        )
    ]


# --- jagged_softmax -------------------------------------------------------------------------


# Rows truncated to more than this many items are spread over programs of this many each
# (pass 1 per chunk, then a combine-and-write pass), so that a batch of a few long rows fills
# the GPU; shorter ones take the one-program-per-row kernel.
SOFTMAX_SPLIT_ITEMS = 512


def _softmax_splits(inputs: Mapping[str, Any]) -> int:
    """Chunks per row for the split kernels; 1: the one-pass kernel."""
    return max(1, -(-inputs["max_L"] // SOFTMAX_SPLIT_ITEMS))


def jagged_softmax_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """out, and for long rows the per-chunk partial max and sum [B, splits, D] (fp32)."""
    import torch

    values, offsets = inputs["values"], inputs["offsets"]
    outputs = {"out": torch.empty_like(values, memory_format=torch.contiguous_format)}
    splits = _softmax_splits(inputs)
    if splits > 1:
        shape = (offsets.numel() - 1, splits, values.shape[1])
        outputs["partial_max"] = torch.empty(shape, dtype=torch.float32, device=values.device)
        outputs["partial_sum"] = torch.empty(shape, dtype=torch.float32, device=values.device)
    return outputs


def jagged_softmax_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    values, offsets, out = inputs["values"], inputs["offsets"], outputs["out"]
    if values.stride(1) != 1 or out.stride(1) != 1:
        raise ValueError("jagged_softmax needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_softmax needs contiguous offsets")
    max_len = inputs["max_L"]
    if max_len < 0:
        raise ValueError(f"max_L must be >= 0, got {max_len}")
    rows, width = offsets.numel() - 1, values.shape[1]
    column_blocks = -(-width // config.constexprs["BLOCK_D"])
    splits = _softmax_splits(inputs)
    if splits == 1:
        return [
            KernelLaunch(
                entry_point="jagged_softmax_kernel",
                args=(values, offsets, out, width, max_len, values.stride(0), out.stride(0)),
                grid=(rows, column_blocks),
            )
        ]
    partial_max, partial_sum = outputs["partial_max"], outputs["partial_sum"]
    chunk, grid = SOFTMAX_SPLIT_ITEMS, (rows, column_blocks, splits)
    return [
        KernelLaunch(
            entry_point="jagged_softmax_partial_kernel",
            args=(values, offsets, partial_max, partial_sum, width, max_len, chunk, splits, values.stride(0)),
            grid=grid,
        ),
        KernelLaunch(
            entry_point="jagged_softmax_normalize_kernel",
            args=(values, offsets, partial_max, partial_sum, out, width, max_len, chunk, splits, values.stride(0), out.stride(0)),
            grid=grid,
        ),
    ]


# --- dlrm_dot_interaction -------------------------------------------------------------------

# tl.dot needs every block dimension >= 16.
MIN_DOT = 16


def output_width(features: int, width: int) -> int:
    """D + (F+1)F/2: the dense row, then one dot product per pair of the F+1 vectors."""
    return width + (features + 1) * features // 2


def dlrm_dot_interaction_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    dense, sparse = inputs["dense"], inputs["sparse"]
    width = output_width(sparse.shape[1], dense.shape[1])
    return {"out": torch.empty(dense.shape[0], width, dtype=dense.dtype, device=dense.device)}


def dlrm_dot_interaction_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    dense, sparse, out = inputs["dense"], inputs["sparse"], outputs["out"]
    if dense.stride(1) != 1 or sparse.stride(2) != 1 or out.stride(1) != 1:
        raise ValueError("dlrm_dot_interaction needs unit stride along D")
    batch, features, width = sparse.shape
    rows = config.constexprs["ROWS_PER_PROGRAM"]
    return [
        KernelLaunch(
            entry_point="dlrm_dot_interaction_kernel",
            args=(
                dense,
                sparse,
                out,
                batch,
                width,
                features,
                dense.stride(0),
                sparse.stride(0),
                sparse.stride(1),
                out.stride(0),
            ),
            grid=(-(-batch // rows),),
            constexprs={"BLOCK_F": max(MIN_DOT, next_power_of_2(features + 1))},
        )
    ]


# --- swish_layer_norm / layer_norm_mul ------------------------------------------------------

# The row kernels hold a whole row in registers; past this width they would spill.
LAYER_NORM_MAX_D = 8192
LAYER_NORM_ACTS = {"none": 0, "sigmoid": 1, "silu": 2}


def layer_norm_block_d(width: int) -> int:
    """The kernels' BLOCK_D: the whole row, a power of two (at least 16)."""
    return max(16, next_power_of_2(width))


def _layer_norm_launch(
    entry_point: str, config: Config, rows: list[Any], out: Any, weight: Any, bias: Any, constexprs: dict[str, Any]
) -> list[KernelLaunch]:
    """rows: the [N, D] operands (x, then u); args are their pointers, weight, bias, out,
    N, D and every [N, D] tensor's row stride."""
    count, width = rows[0].shape
    if width > LAYER_NORM_MAX_D:
        raise ValueError(f"{entry_point}: D={width} is over the row kernels' {LAYER_NORM_MAX_D}")
    if any(t.stride(1) != 1 for t in (*rows, out)) or weight.stride(0) != 1 or bias.stride(0) != 1:
        raise ValueError(f"{entry_point}: needs unit stride along D")
    block_rows = config.constexprs["BLOCK_ROWS"]
    return [
        KernelLaunch(
            entry_point=entry_point,
            args=(*rows, weight, bias, out, count, width, *(t.stride(0) for t in rows), out.stride(0)),
            grid=(-(-count // block_rows),),
            constexprs={**constexprs, "BLOCK_D": layer_norm_block_d(width)},
        )
    ]


def layer_norm_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    x = inputs["x"]
    return {"out": torch.empty(x.shape, dtype=x.dtype, device=x.device)}


def swish_layer_norm_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    return _layer_norm_launch(
        "swish_layer_norm_kernel", config, [inputs["x"]], outputs["out"], inputs["weight"], inputs["bias"], {}
    )


def layer_norm_mul_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    act = LAYER_NORM_ACTS[params.get("act", "none")]
    return _layer_norm_launch(
        "layer_norm_mul_kernel",
        config,
        [inputs["x"], inputs["u"]],
        outputs["out"],
        inputs["weight"],
        inputs["bias"],
        {"ACT": act},
    )


# --- jagged_truncate ------------------------------------------------------------------------


def truncated_capacity(total: int, rows: int, max_len: int) -> int:
    """Rows of jagged_truncate's values buffer: min(L, B * N), a bound on the kept items that
    needs only shapes (the exact count is data, known on the device after the scan)."""
    return min(total, rows * max_len)


def jagged_truncate_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    values, offsets = inputs["values"], inputs["offsets"]
    capacity = truncated_capacity(values.shape[0], offsets.numel() - 1, inputs["N"])
    return {
        "values": torch.empty(capacity, values.shape[1], dtype=values.dtype, device=values.device),
        "offsets": torch.empty_like(offsets),
    }


def jagged_truncate_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """The scan of the kept lengths (one program), then the copy, which reads the new offsets.
    The copy also zero-fills the buffer's rows past the new total (see the template)."""
    values, offsets = inputs["values"], inputs["offsets"]
    out_values, out_offsets = outputs["values"], outputs["offsets"]
    if values.stride(1) != 1 or out_values.stride(1) != 1:
        raise ValueError("jagged_truncate needs unit stride along D")
    if offsets.stride(0) != 1 or out_offsets.stride(0) != 1:
        raise ValueError("jagged_truncate needs contiguous offsets")
    max_len = inputs["N"]
    if max_len < 0:
        raise ValueError(f"N must be >= 0, got {max_len}")
    rows, width = offsets.numel() - 1, values.shape[1]
    # No row is longer than L, so min(N, L) truncates the same and always fits the kernel.
    max_len = min(max_len, values.shape[0])
    block_d = config.constexprs["BLOCK_D"]
    return [
        KernelLaunch(
            entry_point="jagged_truncate_offsets_kernel",
            args=(offsets, out_offsets, rows, max_len),
            grid=(1,),
        ),
        KernelLaunch(
            entry_point="jagged_truncate_kernel",
            args=(
                values,
                offsets,
                out_values,
                out_offsets,
                max_len,
                width,
                rows,
                out_values.shape[0],
                values.stride(0),
                out_values.stride(0),
            ),
            grid=(rows, -(-width // block_d)),
            constexprs={"KEEP_LAST": params.get("keep", "first") == "last"},
        ),
    ]


# --- jagged_to_padded_dense / dense_to_jagged -----------------------------------------------


def jagged_to_padded_dense_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    values, offsets = inputs["values"], inputs["offsets"]
    shape = (offsets.numel() - 1, inputs["N"], values.shape[1])
    return {"out": torch.empty(shape, dtype=values.dtype, device=values.device)}


def jagged_to_padded_dense_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    values, offsets, out = inputs["values"], inputs["offsets"], outputs["out"]
    if values.stride(1) != 1 or out.stride(2) != 1:
        raise ValueError("jagged_to_padded_dense needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_to_padded_dense needs contiguous offsets")
    rows, max_len, width = out.shape
    block_d = config.constexprs["BLOCK_D"]
    return [
        KernelLaunch(
            entry_point="jagged_to_padded_dense_kernel",
            args=(
                values,
                offsets,
                out,
                max_len,
                width,
                float(inputs["padding_value"]),
                values.stride(0),
                out.stride(0),
                out.stride(1),
            ),
            grid=(rows, -(-width // block_d)),
        )
    ]


def dense_to_jagged_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    dense = inputs["dense"]
    return {"out": torch.empty(inputs["L"], dense.shape[2], dtype=dense.dtype, device=dense.device)}


def dense_to_jagged_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    dense, offsets, out = inputs["dense"], inputs["offsets"], outputs["out"]
    if dense.stride(2) != 1 or out.stride(1) != 1:
        raise ValueError("dense_to_jagged needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("dense_to_jagged needs contiguous offsets")
    rows, max_len, width = dense.shape
    block_d = config.constexprs["BLOCK_D"]
    return [
        KernelLaunch(
            entry_point="dense_to_jagged_kernel",
            args=(dense, offsets, out, max_len, width, dense.stride(0), dense.stride(1), out.stride(0)),
            grid=(rows, -(-width // block_d)),
        )
    ]


# --- jagged_flash_attention / hstu_attention -------------------------------------------------


def _attention_width_block(width: int) -> int:
    """The whole head dim in one tile, at least tl.dot's minimum of 16."""
    return max(MIN_DOT, next_power_of_2(width))


def jagged_flash_attention_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {"out": torch.empty_like(inputs["v"])}


def jagged_flash_attention_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    q, k, v, offsets, out = inputs["q"], inputs["k"], inputs["v"], inputs["offsets"], outputs["out"]
    if any(t.stride(1) != 1 for t in (q, k, v, out)):
        raise ValueError("jagged_flash_attention needs unit stride along D")
    if offsets.stride(0) != 1:
        raise ValueError("jagged_flash_attention needs contiguous offsets")
    max_len = inputs["max_N"]
    if max_len < 1:
        raise ValueError(f"max_N must be >= 1, got {max_len}")
    rows, width = offsets.numel() - 1, q.shape[1]
    block_m = config.constexprs["BLOCK_M"]
    return [
        KernelLaunch(
            entry_point="jagged_flash_attention_kernel",
            args=(q, k, v, offsets, out, width, max_len, q.stride(0), k.stride(0), v.stride(0), out.stride(0)),
            # No row has more than L items: query blocks past min(N, L) would all be idle.
            grid=(rows, -(-min(max_len, q.shape[0]) // block_m)),
            constexprs={"BLOCK_D": _attention_width_block(width)},
        )
    ]


def hstu_attention_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {"out": torch.empty_like(inputs["v"])}


def hstu_attention_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    q, k, v, offsets, out = inputs["q"], inputs["k"], inputs["v"], inputs["offsets"], outputs["out"]
    targets = inputs["num_targets"]
    if any(t.stride(2) != 1 for t in (q, k, v, out)):
        raise ValueError("hstu_attention needs unit stride along D")
    if offsets.stride(0) != 1 or targets.stride(0) != 1:
        raise ValueError("hstu_attention needs contiguous offsets and num_targets")
    max_len = inputs["max_N"]
    if max_len < 1:
        raise ValueError(f"max_N must be >= 1, got {max_len}")
    rows, heads, width = offsets.numel() - 1, q.shape[1], q.shape[2]
    block_m = config.constexprs["BLOCK_M"]
    alpha = float(inputs["alpha"]) if inputs.get("alpha") is not None else width**-0.5
    return [
        KernelLaunch(
            entry_point="hstu_attention_kernel",
            args=(
                q,
                k,
                v,
                offsets,
                # int64 [B], zeros when the call has none (the same mask as no targets).
                targets,
                out,
                width,
                max_len,
                alpha,
                q.stride(0),
                q.stride(1),
                k.stride(0),
                k.stride(1),
                v.stride(0),
                v.stride(1),
                out.stride(0),
                out.stride(1),
            ),
            grid=(rows, heads, -(-min(max_len, q.shape[0]) // block_m)),
            constexprs={"BLOCK_D": _attention_width_block(width)},
        )
    ]


# --- dcn_lowrank_cross ----------------------------------------------------------------------


def dcn_lowrank_cross_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """out [B, N], and xv [B, r]: each layer's low-rank projection, in the input dtype
    (scratch between the layer's two products; not part of the result)."""
    import torch

    x0, V = inputs["x0"], inputs["V"]
    return {
        "out": torch.empty(x0.shape, dtype=x0.dtype, device=x0.device),
        "xv": torch.empty((x0.shape[0], V.shape[1]), dtype=x0.dtype, device=x0.device),
    }


def dcn_lowrank_cross_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """Per layer: project (x_l -> xv), then expand (xv -> x_{l+1} in `out`); x_0 is x0."""
    x0, V, W, bias, out, xv = inputs["x0"], inputs["V"], inputs["W"], inputs["bias"], outputs["out"], outputs["xv"]
    if any(t.stride(-1) != 1 for t in (x0, V, W, bias, out, xv)):
        raise ValueError("dcn_lowrank_cross needs unit stride along the last dim")
    layers, rank, width = V.shape
    if layers < 1 or rank < 1:
        raise ValueError(f"dcn_lowrank_cross needs at least one layer and rank 1, got {layers} layers, rank {rank}")
    batch = x0.shape[0]
    block_b, block_n = config.constexprs["BLOCK_B"], config.constexprs["BLOCK_N"]
    row_blocks = -(-batch // block_b)
    launches = []
    for layer in range(layers):
        xl = x0 if layer == 0 else out
        launches += [
            KernelLaunch(
                entry_point="dcn_project_kernel",
                args=(xl, V[layer], xv, batch, width, rank, xl.stride(0), V.stride(1), xv.stride(0)),
                grid=(row_blocks, -(-rank // block_n)),
            ),
            KernelLaunch(
                entry_point="dcn_expand_kernel",
                args=(
                    x0, xl, xv, W[layer], bias[layer], out, batch, width, rank,
                    x0.stride(0), xl.stride(0), xv.stride(0), W.stride(1), out.stride(0),
                ),
                grid=(row_blocks, -(-width // block_n)),
            ),
        ]
    return launches


PLANS: dict[str, LaunchPlan] = {
    "sigrid_hash": LaunchPlan(sigrid_hash_allocate_outputs, sigrid_hash_launches),
    "jagged_sum": LaunchPlan(jagged_sum_allocate_outputs, jagged_sum_launches),
    "jagged_softmax": LaunchPlan(jagged_softmax_allocate_outputs, jagged_softmax_launches),
    "dlrm_dot_interaction": LaunchPlan(dlrm_dot_interaction_allocate_outputs, dlrm_dot_interaction_launches),
    "swish_layer_norm": LaunchPlan(layer_norm_allocate_outputs, swish_layer_norm_launches),
    "layer_norm_mul": LaunchPlan(layer_norm_allocate_outputs, layer_norm_mul_launches),
    "jagged_flash_attention": LaunchPlan(jagged_flash_attention_allocate_outputs, jagged_flash_attention_launches),
    "hstu_attention": LaunchPlan(hstu_attention_allocate_outputs, hstu_attention_launches),
    "jagged_truncate": LaunchPlan(jagged_truncate_allocate_outputs, jagged_truncate_launches),
    "jagged_to_padded_dense": LaunchPlan(jagged_to_padded_dense_allocate_outputs, jagged_to_padded_dense_launches),
    "dense_to_jagged": LaunchPlan(dense_to_jagged_allocate_outputs, dense_to_jagged_launches),
    "dcn_lowrank_cross": LaunchPlan(dcn_lowrank_cross_allocate_outputs, dcn_lowrank_cross_launches),
}


# --- bucketize_sparse_features --------------------------------------------------------------


def bucketize_sparse_features_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    ids, offsets = inputs["ids"], inputs["offsets"]
    segments = inputs["S"] * (offsets.numel() - 1)
    outputs = {
        "new_lengths": torch.empty(segments, dtype=offsets.dtype, device=offsets.device),
        "new_offsets": torch.empty(segments + 1, dtype=offsets.dtype, device=offsets.device),
        "new_ids": torch.empty(ids.numel(), dtype=torch.int64, device=ids.device),
    }
    if params.get("positions", "0") == "1":
        outputs["positions"] = torch.empty(ids.numel(), dtype=torch.int64, device=ids.device)
    return outputs


def bucketize_sparse_features_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    """count (grid R / BLOCK_R), scan (blocks, carry, add), scatter (grid R / BLOCK_R), in that
    order on one stream."""
    ids, offsets, buckets = inputs["ids"], inputs["offsets"], inputs["S"]
    blocked = params.get("block", "0") == "1"
    with_positions = params.get("positions", "0") == "1"
    tensors = [ids, offsets, *outputs.values()] + ([inputs["block_sizes"]] if blocked else [])
    if any(t.dim() != 1 or t.stride(0) != 1 for t in tensors if t.numel() > 1):
        raise ValueError("bucketize_sparse_features needs contiguous 1-d tensors")
    if not 1 <= buckets < 2**31:
        raise ValueError(f"S must be in [1, 2^31), got {buckets}")
    rows = offsets.numel() - 1
    if blocked:
        block_sizes = inputs["block_sizes"]
        features = block_sizes.numel()
        if features < 1 or rows % features:
            raise ValueError(f"{rows} rows are not {features} features x a batch")
        rows_per_feature = max(rows // features, 1)
    else:
        block_sizes, rows_per_feature = offsets, 1  # unread: BLOCKED is off
    new_lengths, new_offsets, new_ids = outputs["new_lengths"], outputs["new_offsets"], outputs["new_ids"]
    positions = outputs["positions"] if with_positions else new_ids  # unread without POSITIONS
    segments = buckets * rows
    block_r, block_l, block_s = (config.constexprs[name] for name in ("BLOCK_R", "BLOCK_L", "BLOCK_S"))
    row_blocks = -(-rows // block_r)
    # At least one block, which writes new_offsets[0] even when there are no segments.
    scan_blocks = max(1, -(-segments // (block_r * block_l * block_s)))
    return [
        KernelLaunch(
            entry_point="bucketize_count_kernel",
            args=(ids, offsets, block_sizes, new_lengths, rows, buckets, rows_per_feature),
            grid=(row_blocks,),
            constexprs={"BLOCKED": blocked},
        ),
        KernelLaunch(entry_point="bucketize_scan_blocks_kernel", args=(new_lengths, new_offsets, segments), grid=(scan_blocks,)),
        KernelLaunch(entry_point="bucketize_scan_carry_kernel", args=(new_offsets, segments), grid=(1,)),
        KernelLaunch(entry_point="bucketize_scan_add_kernel", args=(new_offsets, segments), grid=(scan_blocks,)),
        KernelLaunch(
            entry_point="bucketize_scatter_kernel",
            args=(ids, offsets, block_sizes, new_offsets, new_ids, positions, rows, buckets, rows_per_feature),
            grid=(row_blocks,),
            constexprs={"BLOCKED": blocked, "POSITIONS": with_positions},
        ),
    ]


PLANS["bucketize_sparse_features"] = LaunchPlan(
    bucketize_sparse_features_allocate_outputs, bucketize_sparse_features_launches
)


# --- batched_dense_bucketize ----------------------------------------------------------------


def batched_dense_bucketize_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    x = inputs["x"]
    return {"out": torch.empty(x.shape, dtype=torch.int64, device=x.device)}


def batched_dense_bucketize_launches(
    params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> list[KernelLaunch]:
    x, values, offsets, out = inputs["x"], inputs["border_values"], inputs["border_offsets"], outputs["out"]
    if x.dim() != 2 or offsets.numel() != x.shape[1] + 1:
        raise ValueError("batched_dense_bucketize wants x [B, F] and border_offsets [F+1]")
    if (x.shape[1] > 1 and x.stride(1) != 1) or (out.shape[1] > 1 and out.stride(1) != 1):
        raise ValueError("batched_dense_bucketize needs unit stride along F")
    if offsets.stride(0) != 1 or (values.numel() > 1 and values.stride(0) != 1):
        raise ValueError("batched_dense_bucketize needs contiguous borders")
    batch, features = x.shape
    block_b, block_f = config.constexprs["BLOCK_B"], config.constexprs["BLOCK_F"]
    return [
        KernelLaunch(
            entry_point="batched_dense_bucketize_kernel",
            args=(x, values, offsets, out, batch, features, x.stride(0), out.stride(0)),
            grid=(-(-batch // block_b), -(-features // block_f)),
        )
    ]


PLANS["batched_dense_bucketize"] = LaunchPlan(batched_dense_bucketize_allocate_outputs, batched_dense_bucketize_launches)

# The backward operators' plans (kreg.ops.backward) register themselves here.
import kreg.ops.backward  # noqa: E402, F401
