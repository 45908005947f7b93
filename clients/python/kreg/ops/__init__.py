"""Op-level API: dispatch to the served kernel or fall back to the PyTorch reference.

    import kreg.ops
    kreg.ops.configure(client, model="dlrm-v2", platform="nvidia", arch="sm_90", lockfile="dlrm-v2.lock.json")
    kreg.ops.preload()                                         # optional: load the model's kernels now
    pooled = kreg.ops.jagged_sum(values, offsets)              # served kernel, or the reference
    kreg.ops.last_decision("jagged_sum")                       # binary / source / reference, and why

Each op names the kernel its inputs need the way the generator's templates name them
(`jagged_sum@1{D=128,dtype=fp32}`: width, dtype, `index_dtype=int32` for int32 offsets,
`mean=1`; see kreg/profiles.py), asks the provider that `configure` set up for it, and runs
it (kreg.ops.loaded). The reference (`kreg.ops.reference`, exact PyTorch) runs instead, with
the same results up to the kernels' float tolerance, when:

- configure() was not called (silently: that is the default),
- the inputs are on the CPU (served kernels run on the GPU; under Triton's interpreter,
  TRITON_INTERPRET=1, source kernels run on CPU tensors too), or are of a
  kind no key names (fp64, a zero width, ...); invalid inputs get the reference's errors,
- the registry answers REFERENCE (nothing published, retracted, slower than the reference),
  or the artifact does not load here (LoadError, SourceError) or fails to launch;

each logged as a warning once per key and reason. Binaries load only on GPU hosts; on a CPU
host a BINARY resolution runs the reference (the GPU bench exercises the binary path).

Every op is also a PyTorch operator, torch.ops.kreg.<op> (kreg.ops.library: a custom op with
a fake implementation), and calls go through it: torch.compile(fullgraph=True) of a model
that calls kreg.ops.* traces one opaque call per op and runs the served kernel. The
differentiable ops' backward runs their served backward kernel (kreg.ops.backward: its own
key, `<op>_backward`), else their reference's backward, recomputed on the saved inputs.

This package imports nothing heavy: torch only once an op is called with tensors (they
already imported it) or kreg.ops is imported after torch, triton only when a kernel is loaded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kreg.keys import OperatorSpec

if TYPE_CHECKING:
    import torch

    from kreg.client import Client
    from kreg.keys import KernelKey
    from kreg.model import Toolchain
    from kreg.ops.provider import Decision, OpCall, Provider

__all__ = [
    "configure",
    "register_torch_ops",
    "dcn_lowrank_cross",
    "dlrm_dot_interaction",
    "embedding_bag",
    "explain",
    "jagged_softmax",
    "jagged_sum",
    "last_decision",
    "layer_norm_mul",
    "preload",
    "provider",
    "reset",
    "sigrid_hash",
    "swish_layer_norm",
]

_PROVIDER: Provider | None = None
_CONFIGURE_LOCK = threading.Lock()


def configure(
    client: Client | None,
    *,
    model: str,
    platform: str,
    arch: str,
    lockfile: Path | str | None = None,
    cache_dir: Path | str | None = None,
    runtime_toolchain: Toolchain | None = None,
    retry_after_s: float = 60.0,
    trusted_keys: Sequence[Path | str] | None = None,
) -> Provider:
    """Serve kreg.ops from the registry for this host kind; replaces any earlier provider.

    `client` may be None for a registry-less start from `lockfile` (its pinned resolutions)
    with blobs from the node cache at `cache_dir`; with a client, the lockfile answers when
    the registry does not, and blobs come through the client's own cache. Binaries are used
    when built by `runtime_toolchain` (default: the client's runtime, else the lockfile's, else
    this host's installed triton for `platform`). A client that declares no toolchain is given
    that one, so the registry can answer with binaries.
    With `trusted_keys` (public key files; default: KREG_TRUSTED_KEYS), an artifact loads
    only when one of them signed it (kreg.signing); a refused one is counted in
    `Provider.refusals` and the key falls back to its lockfile pin, else the reference.
    A malformed lockfile raises InvalidArgument here, at start, not at the first call.
    """
    from dataclasses import replace

    from kreg.cache import BlobCache
    from kreg.runtime import local_toolchain
    from kreg.keys import KernelKey
    from kreg.signing import TrustedKeys
    from kreg.ops.provider import Provider, open_lockfile

    KernelKey(platform, arch, model, OperatorSpec("jagged_sum", 1))  # validates the host kind now
    lock = open_lockfile(lockfile)
    if runtime_toolchain is None:
        runtime_toolchain = client.runtime.toolchain if client is not None else (lock.toolchain if lock else None)
    if runtime_toolchain is None:
        runtime_toolchain = local_toolchain(platform)
    if client is not None and client.runtime.toolchain is None:
        client.runtime = replace(client.runtime, toolchain=runtime_toolchain)
    made = Provider(
        client,
        model,
        platform,
        arch,
        lockfile=lock,
        cache=BlobCache(cache_dir) if cache_dir is not None else None,
        runtime_toolchain=runtime_toolchain,
        retry_after_s=retry_after_s,
        trusted=TrustedKeys.load([Path(p) for p in trusted_keys]) if trusted_keys is not None else TrustedKeys.from_env(),
    )
    global _PROVIDER
    with _CONFIGURE_LOCK:
        _PROVIDER = made
    if "torch" in sys.modules:
        register_torch_ops()
    return made


def reset() -> None:
    """Back to the references for every op (no provider)."""
    global _PROVIDER
    with _CONFIGURE_LOCK:
        _PROVIDER = None


def preload(operators: Sequence[OperatorSpec] | None = None, *, training: bool = False) -> list[Decision]:
    """Resolve and load every kernel of the configured model now (default: its profile in
    kreg.profiles, with its backward kernels when `training`; one manifest request), so the
    first calls pay no fetch, load or compile. Each key's standing comes back, as
    last_decision would give it."""
    current = _PROVIDER
    if current is None:
        raise RuntimeError("kreg.ops.preload() needs kreg.ops.configure() first")
    return current.preload(operators, training=training)


def provider() -> Provider | None:
    return _PROVIDER


def last_decision(target: KernelKey | OperatorSpec | str) -> Decision | None:
    """How the last call of an op (by name, spec or key) ran, and why; None before any call
    through a provider (without configure() every op runs its reference)."""
    current = _PROVIDER
    return current.last_decision(target) if current is not None else None


def explain(op: str, *args: Any, **kwargs: Any) -> Decision:
    """What `kreg.ops.<op>(*args, **kwargs)` would run, and why, without running it (it
    does resolve and load the kernel, as the call would)."""
    from kreg.ops.provider import Decision

    try:
        prepare = _PREPARE[op]
    except KeyError:
        raise ValueError(f"no op {op!r}; known: {', '.join(sorted(_PREPARE))}") from None
    import torch

    with torch.no_grad():  # as a call runs it: the forward of a differentiable op's torch op
        call = prepare(*args, **kwargs)
    current = _PROVIDER
    if current is None:
        return Decision(str(call.spec or op), "reference", "kreg.ops.configure() was not called")
    return current.explain(call)


# kreg.ops.library.ADAPTERS once the ops are registered with torch.library; and torch's
# grad-mode check, kept here so that routing a call imports nothing.
_LIBRARY: dict[str, Callable[..., Any]] | None = None
_DIFFERENTIABLE: frozenset[str] = frozenset()
_GRAD_ENABLED: Callable[[], bool] = lambda: False
_TENSOR: type = type(None)


def register_torch_ops() -> None:
    """Register every op with torch.library as torch.ops.kreg.<op> (kreg.ops.library). Done
    when kreg.ops is imported after torch, by configure() once torch is imported, and else at
    the first call: before a torch.compile, make sure one of these has happened (a
    registration inside a trace would break the graph)."""
    global _LIBRARY, _DIFFERENTIABLE, _GRAD_ENABLED, _TENSOR
    if _LIBRARY is None:
        import torch

        from kreg.ops.library import ADAPTERS, DIFFERENTIABLE

        _GRAD_ENABLED, _TENSOR, _DIFFERENTIABLE, _LIBRARY = torch.is_grad_enabled, torch.Tensor, DIFFERENTIABLE, ADAPTERS


def _route(name: str, eager: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], tensors: tuple[Any, ...]) -> Any:
    """Run op `name` through its torch op, so torch.compile sees one opaque call that runs the
    served kernel (a differentiable op's backward is its reference's: kreg.ops.library);
    eagerly when an argument that should be a tensor is not (the reference's error), or when
    inputs of an op with integer outputs need grad."""
    if _LIBRARY is None:
        register_torch_ops()
    assert _LIBRARY is not None
    if not all(t is None or isinstance(t, _TENSOR) for t in tensors):
        return eager(*args, **kwargs)
    if name not in _DIFFERENTIABLE and _GRAD_ENABLED() and any(t is not None and t.requires_grad for t in tensors):
        return eager(*args, **kwargs)
    return _LIBRARY[name](*args, **kwargs)


def _reference() -> ModuleType:
    """kreg.ops.reference, imported on first use (it imports torch)."""
    from kreg.ops import reference

    return reference


# --- the ops ----------------------------------------------------------------------------------

_FLOAT_DTYPES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}
_INDEX_DTYPES = ("torch.int32", "torch.int64")


def _call(name: str, spec: OperatorSpec | None, inputs: dict[str, Any], reference: Callable[[], Any], why_not: str = "") -> OpCall:
    from kreg.ops.provider import OpCall

    return OpCall(name, spec, inputs, reference, why_not)


def _unit_stride(t: torch.Tensor) -> torch.Tensor:
    """t with stride 1 along its last dim (the kernels' layout), copied only when needed."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _needs_grad(*tensors: torch.Tensor) -> str:
    import torch

    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "inputs require grad outside the torch op's autograd formula (kreg.ops.library)"
    return ""


def _jagged_why_not(values: Any, offsets: Any) -> str:
    if not (hasattr(values, "dim") and hasattr(offsets, "dim")):
        return "values and offsets must be tensors"
    if values.dim() != 2 or offsets.dim() != 1 or offsets.numel() < 1:
        return f"want values [L, D] and offsets [B+1]; got {tuple(values.shape)}, {tuple(offsets.shape)}"
    if str(values.dtype) not in _FLOAT_DTYPES:
        return f"no kernel for values of {values.dtype}"
    if str(offsets.dtype) not in _INDEX_DTYPES:
        return f"offsets must be int32 or int64, got {offsets.dtype}"
    if values.shape[1] == 0:
        return "zero-width values"
    return _needs_grad(values)


def _jagged_params(values: torch.Tensor, offsets: torch.Tensor) -> dict[str, str]:
    params = {"D": str(values.shape[1]), "dtype": _FLOAT_DTYPES[str(values.dtype)]}
    if str(offsets.dtype) == "torch.int32":
        params["index_dtype"] = "int32"  # int64, the default, stays unnamed (as in the profiles)
    return params


def _weights_why_not(weights: Any, values: Any, items: int, mean: bool) -> str:
    if weights is None:
        return ""
    if mean:
        return "weights are for sums: a weighted mean is not defined"
    if not hasattr(weights, "dim") or weights.dim() != 1 or weights.shape[0] != items or weights.dtype != values.dtype:
        return f"weights must be a [{items}] tensor of {values.dtype}"
    return _needs_grad(weights)


def _prepare_jagged_sum(
    values: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().jagged_sum(values, offsets, mean=mean, weights=weights)

    why_not = _jagged_why_not(values, offsets) or _weights_why_not(weights, values, values.shape[0], mean)
    if why_not:
        return _call("jagged_sum", None, {}, reference, why_not)
    return _pooling_call("jagged_sum", {"values": _unit_stride(values), "offsets": offsets.contiguous()}, mean, weights, reference)


def _pooling_call(
    name: str, inputs: dict[str, Any], mean: bool, weights: torch.Tensor | None, reference: Callable[[], Any], gather: bool = False
) -> OpCall:
    """The jagged_sum@1 key and inputs of a pooling call (plain, weighted or embedding bag)."""
    params = _jagged_params(inputs["values"], inputs["offsets"])
    if mean:
        params["mean"] = "1"
    if weights is not None:
        params["weighted"] = "1"
        inputs["weights"] = weights.contiguous()
    if gather:
        params["gather"] = "1"
    return _call(name, OperatorSpec("jagged_sum", 1, params), inputs, reference)


def jagged_sum(values: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None) -> torch.Tensor:
    """out[b] = sum of values[offsets[b]:offsets[b+1]] ([B, D]); the mean when `mean`, 0 for
    an empty row; with `weights` [L], each item times its weight. As
    kreg.ops.reference.jagged_sum, on the served kernel when there is one."""
    return _route("jagged_sum", _eager_jagged_sum, (values, offsets), {"mean": mean, "weights": weights}, (values, offsets, weights))  # type: ignore[no-any-return]


def _eager_jagged_sum(
    values: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """jagged_sum's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().jagged_sum(values, offsets, mean=mean, weights=weights)
    return current.run(_prepare_jagged_sum(values, offsets, mean=mean, weights=weights))


def _prepare_embedding_bag(
    table: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().embedding_bag(table, indices, offsets, mean=mean, weights=weights)

    why_not = _jagged_why_not(table, offsets)
    if not why_not and (not hasattr(indices, "dim") or indices.dim() != 1 or indices.dtype != offsets.dtype):
        why_not = "indices must be a 1-d tensor of the offsets' dtype"
    why_not = why_not or _weights_why_not(weights, table, indices.shape[0], mean)
    if why_not:
        return _call("embedding_bag", None, {}, reference, why_not)
    inputs = {"values": _unit_stride(table), "offsets": offsets.contiguous(), "indices": indices.contiguous()}
    return _pooling_call("embedding_bag", inputs, mean, weights, reference, gather=True)


def embedding_bag(table: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None) -> torch.Tensor:
    """F.embedding_bag over offsets [B+1]: bag b pools table rows indices[offsets[b]:offsets[b+1]]
    (sum, or the mean; `weights` [L] scale a sum), on the served jagged_sum@1{gather=1} kernel
    when there is one. Indices must lie in the table: the kernel does not check them."""
    return _route("embedding_bag", _eager_embedding_bag, (table, indices, offsets), {"mean": mean, "weights": weights}, (table, indices, offsets, weights))  # type: ignore[no-any-return]


def _eager_embedding_bag(
    table: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """embedding_bag's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().embedding_bag(table, indices, offsets, mean=mean, weights=weights)
    return current.run(_prepare_embedding_bag(table, indices, offsets, mean=mean, weights=weights))


def _prepare_jagged_softmax(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().jagged_softmax(values, offsets, max_len=max_len)

    why_not = _jagged_why_not(values, offsets)
    if not why_not and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 0):
        why_not = f"max_len must be an int >= 0, got {max_len!r}"
    if why_not:
        return _call("jagged_softmax", None, {}, reference, why_not)
    # No row is longer than L, so min(max_len, L) truncates the same and always fits the kernel.
    inputs = {"values": _unit_stride(values), "offsets": offsets.contiguous(), "max_L": min(max_len, values.shape[0])}
    return _call("jagged_softmax", OperatorSpec("jagged_softmax", 1, _jagged_params(values, offsets)), inputs, reference)


def jagged_softmax(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int) -> torch.Tensor:
    """Softmax over each row's first max_len items, per column; 0 past max_len. As
    kreg.ops.reference.jagged_softmax, on the served kernel when there is one."""
    return _route("jagged_softmax", _eager_jagged_softmax, (values, offsets), {"max_len": max_len}, (values, offsets))  # type: ignore[no-any-return]


def _eager_jagged_softmax(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int) -> torch.Tensor:
    """jagged_softmax's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().jagged_softmax(values, offsets, max_len=max_len)
    return current.run(_prepare_jagged_softmax(values, offsets, max_len=max_len))


def _prepare_dlrm_dot_interaction(dense: torch.Tensor, sparse: torch.Tensor) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().dlrm_dot_interaction(dense, sparse)

    why_not = ""
    if not (hasattr(dense, "dim") and hasattr(sparse, "dim")):
        why_not = "dense and sparse must be tensors"
    elif dense.dim() != 2 or sparse.dim() != 3 or sparse.shape[0] != dense.shape[0] or sparse.shape[2] != dense.shape[1]:
        why_not = f"want dense [B, D] and sparse [B, F, D]; got {tuple(dense.shape)}, {tuple(sparse.shape)}"
    elif sparse.dtype != dense.dtype or str(dense.dtype) not in _FLOAT_DTYPES:
        why_not = f"no kernel for dense {dense.dtype} with sparse {sparse.dtype}"
    elif sparse.shape[1] == 0 or dense.shape[1] == 0:
        why_not = "no sparse feature or zero width: nothing for a kernel to do"
    else:
        why_not = _needs_grad(dense, sparse)
    if why_not:
        return _call("dlrm_dot_interaction", None, {}, reference, why_not)
    params = {"D": str(dense.shape[1]), "F": str(sparse.shape[1]), "dtype": _FLOAT_DTYPES[str(dense.dtype)]}
    inputs = {"dense": _unit_stride(dense), "sparse": _unit_stride(sparse)}
    return _call("dlrm_dot_interaction", OperatorSpec("dlrm_dot_interaction", 1, params), inputs, reference)


def dlrm_dot_interaction(dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """TorchRec's dot interaction: cat(dense, the strict upper triangle of T Tᵀ) with
    T = cat(dense[:, None], sparse). As kreg.ops.reference.dlrm_dot_interaction, on the
    served kernel when there is one."""
    return _route("dlrm_dot_interaction", _eager_dlrm_dot_interaction, (dense, sparse), {}, (dense, sparse))  # type: ignore[no-any-return]


def _eager_dlrm_dot_interaction(dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """dlrm_dot_interaction's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().dlrm_dot_interaction(dense, sparse)
    return current.run(_prepare_dlrm_dot_interaction(dense, sparse))


def _prepare_sigrid_hash(ids: torch.Tensor, *, salt: int, modulus: int) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().sigrid_hash(ids, salt=salt, modulus=modulus)

    why_not = ""
    if not hasattr(ids, "dtype") or str(ids.dtype) not in _INDEX_DTYPES:
        why_not = f"ids must be an int32 or int64 tensor, got {getattr(ids, 'dtype', type(ids).__name__)}"
    elif any(isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63 for v in (salt, modulus)):
        why_not = f"salt and modulus must be int64 values, got {salt!r}, {modulus!r}"
    if why_not:
        return _call("sigrid_hash", None, {}, reference, why_not)
    import torch

    # int32 ids are sign-extended first, as the reference (and C++) does.
    wide = ids.to(torch.int64).contiguous()
    inputs = {"ids": wide, "salt": salt, "M": modulus}
    return _call("sigrid_hash", OperatorSpec("sigrid_hash", 1, {"dtype": "int64"}), inputs, reference)


def sigrid_hash(ids: torch.Tensor, *, salt: int, modulus: int) -> torch.Tensor:
    """floormod(hash_128_to_64(salt, twang_mix64(id)), modulus) per id, int64 (Velox). As
    kreg.ops.reference.sigrid_hash, on the served kernel when there is one."""
    return _route("sigrid_hash", _eager_sigrid_hash, (ids,), {"salt": salt, "modulus": modulus}, (ids,))  # type: ignore[no-any-return]


def _eager_sigrid_hash(ids: torch.Tensor, *, salt: int, modulus: int) -> torch.Tensor:
    """sigrid_hash's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().sigrid_hash(ids, salt=salt, modulus=modulus)
    return current.run(_prepare_sigrid_hash(ids, salt=salt, modulus=modulus))


def _layer_norm_why_not(x: Any, weight: Any, bias: Any, eps: float, *others: Any) -> str:
    if not all(hasattr(t, "dim") for t in (x, weight, bias, *others)):
        return "x, weight and bias must be tensors"
    if x.dim() != 2 or weight.dim() != 1 or bias.dim() != 1 or any(t.shape != x.shape for t in others):
        return f"want x [N, D] and weight, bias [D]; got {tuple(x.shape)}, {tuple(weight.shape)}, {tuple(bias.shape)}"
    if weight.shape[0] != x.shape[1] or bias.shape[0] != x.shape[1]:
        return f"weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not match x {tuple(x.shape)}"
    if str(x.dtype) not in _FLOAT_DTYPES or any(t.dtype != x.dtype for t in (weight, bias, *others)):
        return f"no kernel for x of {x.dtype} with weight {weight.dtype}, bias {bias.dtype}"
    if x.shape[1] == 0 or x.shape[1] > 8192:
        return f"no row kernel for D={x.shape[1]} (1-8192)"
    if eps != 1e-5:
        return f"the kernels' eps is 1e-5, got {eps!r}"
    return _needs_grad(x, weight, bias, *others)


def _prepare_swish_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().swish_layer_norm(x, weight, bias, eps=eps)

    why_not = _layer_norm_why_not(x, weight, bias, eps)
    if why_not:
        return _call("swish_layer_norm", None, {}, reference, why_not)
    params = {"D": str(x.shape[1]), "dtype": _FLOAT_DTYPES[str(x.dtype)]}
    inputs = {"x": _unit_stride(x), "weight": weight.contiguous(), "bias": bias.contiguous()}
    return _call("swish_layer_norm", OperatorSpec("swish_layer_norm", 1, params), inputs, reference)


def swish_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """x * sigmoid(LN(x; weight, bias)) per row of x [N, D], in fp32, cast back. As
    kreg.ops.reference.swish_layer_norm, on the served kernel when there is one (eps 1e-5)."""
    return _route("swish_layer_norm", _eager_swish_layer_norm, (x, weight, bias), {"eps": eps}, (x, weight, bias))  # type: ignore[no-any-return]


def _eager_swish_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """swish_layer_norm's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().swish_layer_norm(x, weight, bias, eps=eps)
    return current.run(_prepare_swish_layer_norm(x, weight, bias, eps=eps))


def _prepare_layer_norm_mul(
    x: torch.Tensor, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, act: str = "none", eps: float = 1e-5
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().layer_norm_mul(x, u, weight, bias, act=act, eps=eps)

    why_not = _layer_norm_why_not(x, weight, bias, eps, u)
    if not why_not and act not in ("none", "sigmoid", "silu"):
        why_not = f"act must be none, sigmoid or silu, got {act!r}"
    if why_not:
        return _call("layer_norm_mul", None, {}, reference, why_not)
    params = {"D": str(x.shape[1]), "dtype": _FLOAT_DTYPES[str(x.dtype)]}
    if act != "none":
        params["act"] = act  # none, the default, stays unnamed (as in the profiles)
    inputs = {"x": _unit_stride(x), "u": _unit_stride(u), "weight": weight.contiguous(), "bias": bias.contiguous()}
    return _call("layer_norm_mul", OperatorSpec("layer_norm_mul", 1, params), inputs, reference)


def layer_norm_mul(x: torch.Tensor, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, act: str = "none", eps: float = 1e-5) -> torch.Tensor:
    """act(u) * LN(x; weight, bias) per row, act none|sigmoid|silu, in fp32, cast back. As
    kreg.ops.reference.layer_norm_mul, on the served kernel when there is one (eps 1e-5)."""
    return _route("layer_norm_mul", _eager_layer_norm_mul, (x, u, weight, bias), {"act": act, "eps": eps}, (x, u, weight, bias))  # type: ignore[no-any-return]


def _eager_layer_norm_mul(
    x: torch.Tensor, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, act: str = "none", eps: float = 1e-5
) -> torch.Tensor:
    """layer_norm_mul's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().layer_norm_mul(x, u, weight, bias, act=act, eps=eps)
    return current.run(_prepare_layer_norm_mul(x, u, weight, bias, act=act, eps=eps))


def _prepare_dcn_lowrank_cross(x0: torch.Tensor, V: torch.Tensor, W: torch.Tensor, bias: torch.Tensor) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().dcn_lowrank_cross(x0, V, W, bias)

    why_not = ""
    if not all(hasattr(t, "dim") for t in (x0, V, W, bias)):
        why_not = "x0, V, W and bias must be tensors"
    elif x0.dim() != 2 or V.dim() != 3 or W.dim() != 3 or bias.dim() != 2:
        why_not = f"want x0 [B, N], V [L, r, N], W [L, N, r], bias [L, N]; got {tuple(x0.shape)}, {tuple(V.shape)}"
    elif (
        W.shape != (V.shape[0], V.shape[2], V.shape[1])
        or bias.shape != (V.shape[0], V.shape[2])
        or x0.shape[1] != V.shape[2]
    ):
        why_not = f"shapes disagree: x0 {tuple(x0.shape)}, V {tuple(V.shape)}, W {tuple(W.shape)}, bias {tuple(bias.shape)}"
    elif str(x0.dtype) not in _FLOAT_DTYPES or any(t.dtype != x0.dtype for t in (V, W, bias)):
        why_not = f"no kernel for x0 {x0.dtype} with V {V.dtype}, W {W.dtype}, bias {bias.dtype}"
    elif V.shape[0] == 0 or x0.shape[1] == 0 or V.shape[1] == 0:
        why_not = f"no kernel for {V.shape[0]} layers, N={x0.shape[1]}, r={V.shape[1]}"
    else:
        why_not = _needs_grad(x0, V, W, bias)
    if why_not:
        return _call("dcn_lowrank_cross", None, {}, reference, why_not)
    layers, rank, width = V.shape
    params = {"N": str(width), "dtype": _FLOAT_DTYPES[str(x0.dtype)], "layers": str(layers), "r": str(rank)}
    inputs = {"x0": _unit_stride(x0), "V": V.contiguous(), "W": W.contiguous(), "bias": bias.contiguous()}
    return _call("dcn_lowrank_cross", OperatorSpec("dcn_lowrank_cross", 1, params), inputs, reference)


def dcn_lowrank_cross(x0: torch.Tensor, V: torch.Tensor, W: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """DCN-v2's low-rank cross network x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l over the L
    layers of V [L, r, N], W [L, N, r], bias [L, N] (TorchRec LowRankCrossNet's parameters).
    As kreg.ops.reference.dcn_lowrank_cross, on the served kernel when there is one."""
    return _route("dcn_lowrank_cross", _eager_dcn_lowrank_cross, (x0, V, W, bias), {}, (x0, V, W, bias))  # type: ignore[no-any-return]


def _eager_dcn_lowrank_cross(x0: torch.Tensor, V: torch.Tensor, W: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """dcn_lowrank_cross's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().dcn_lowrank_cross(x0, V, W, bias)
    return current.run(_prepare_dcn_lowrank_cross(x0, V, W, bias))

_PREPARE: dict[str, Callable[..., OpCall]] = {
    "jagged_sum": _prepare_jagged_sum,
    "embedding_bag": _prepare_embedding_bag,
    "jagged_softmax": _prepare_jagged_softmax,
    "dlrm_dot_interaction": _prepare_dlrm_dot_interaction,
    "sigrid_hash": _prepare_sigrid_hash,
    "swish_layer_norm": _prepare_swish_layer_norm,
    "layer_norm_mul": _prepare_layer_norm_mul,
    "dcn_lowrank_cross": _prepare_dcn_lowrank_cross,
}


# --- jagged_truncate / jagged_to_padded_dense / dense_to_jagged ---------------------------------


def _max_len_why_not(max_len: Any) -> str:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 0:
        return f"max_len must be an int >= 0, got {max_len!r}"
    return ""


def _prepare_jagged_truncate(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, keep: str = "first") -> OpCall:
    def reference() -> tuple[torch.Tensor, torch.Tensor]:
        return _reference().jagged_truncate(values, offsets, max_len=max_len, keep=keep)

    why_not = _jagged_why_not(values, offsets) or _max_len_why_not(max_len)
    if not why_not and keep not in ("first", "last"):
        why_not = f"keep must be 'first' or 'last', got {keep!r}"
    if why_not:
        return _call("jagged_truncate", None, {}, reference, why_not)
    from dataclasses import replace

    params = _jagged_params(values, offsets)
    if keep == "last":
        params["keep"] = "last"  # first, the default, stays unnamed
    inputs = {"values": _unit_stride(values), "offsets": offsets.contiguous(), "N": max_len}
    call = _call("jagged_truncate", OperatorSpec("jagged_truncate", 1, params), inputs, reference)
    return replace(call, output=("values", "offsets"))


def jagged_truncate(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, keep: str = "first") -> tuple[torch.Tensor, torch.Tensor]:
    """(values, offsets) keeping the first (or, keep="last", the last) min(len_b, max_len)
    items of every row. As kreg.ops.reference.jagged_truncate, on the served kernel when
    there is one; the kernel fills a buffer sized from shapes, and the kept count is read
    back (one device sync, as any op whose output size is data)."""
    return _route("jagged_truncate", _eager_jagged_truncate, (values, offsets), {"max_len": max_len, "keep": keep}, (values, offsets))  # type: ignore[no-any-return]


def _eager_jagged_truncate(
    values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, keep: str = "first"
) -> tuple[torch.Tensor, torch.Tensor]:
    """jagged_truncate's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().jagged_truncate(values, offsets, max_len=max_len, keep=keep)
    new_values, new_offsets = current.run(_prepare_jagged_truncate(values, offsets, max_len=max_len, keep=keep))
    kept = int(new_offsets[-1])
    return (new_values if new_values.shape[0] == kept else new_values[:kept]), new_offsets


def _prepare_jagged_to_padded_dense(
    values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, padding_value: float = 0.0
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().jagged_to_padded_dense(values, offsets, max_len=max_len, padding_value=padding_value)

    why_not = _jagged_why_not(values, offsets) or _max_len_why_not(max_len)
    if not why_not and (isinstance(padding_value, bool) or not isinstance(padding_value, (int, float))):
        why_not = f"padding_value must be a number, got {padding_value!r}"
    if why_not:
        return _call("jagged_to_padded_dense", None, {}, reference, why_not)
    inputs = {
        "values": _unit_stride(values),
        "offsets": offsets.contiguous(),
        "N": max_len,
        "padding_value": float(padding_value),
    }
    spec = OperatorSpec("jagged_to_padded_dense", 1, _jagged_params(values, offsets))
    return _call("jagged_to_padded_dense", spec, inputs, reference)


def jagged_to_padded_dense(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, padding_value: float = 0.0) -> torch.Tensor:
    """[B, max_len, D]: each row's first min(len_b, max_len) items, then padding_value. As
    kreg.ops.reference.jagged_to_padded_dense, on the served kernel when there is one."""
    return _route("jagged_to_padded_dense", _eager_jagged_to_padded_dense, (values, offsets), {"max_len": max_len, "padding_value": padding_value}, (values, offsets))  # type: ignore[no-any-return]


def _eager_jagged_to_padded_dense(
    values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, padding_value: float = 0.0
) -> torch.Tensor:
    """jagged_to_padded_dense's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().jagged_to_padded_dense(values, offsets, max_len=max_len, padding_value=padding_value)
    return current.run(_prepare_jagged_to_padded_dense(values, offsets, max_len=max_len, padding_value=padding_value))


def _prepare_dense_to_jagged(dense: torch.Tensor, offsets: torch.Tensor, *, total_L: int | None = None) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().dense_to_jagged(dense, offsets, total_L=total_L)

    why_not = ""
    if not (hasattr(dense, "dim") and hasattr(offsets, "dim")):
        why_not = "dense and offsets must be tensors"
    elif dense.dim() != 3 or offsets.dim() != 1 or offsets.numel() != dense.shape[0] + 1:
        why_not = f"want dense [B, N, D] and offsets [B+1]; got {tuple(dense.shape)}, {tuple(offsets.shape)}"
    elif str(dense.dtype) not in _FLOAT_DTYPES:
        why_not = f"no kernel for dense of {dense.dtype}"
    elif str(offsets.dtype) not in _INDEX_DTYPES:
        why_not = f"offsets must be int32 or int64, got {offsets.dtype}"
    elif dense.shape[2] == 0:
        why_not = "zero-width dense"
    elif total_L is not None and (isinstance(total_L, bool) or not isinstance(total_L, int) or total_L < 0):
        why_not = f"total_L must be an int >= 0, got {total_L!r}"
    else:
        why_not = _needs_grad(dense)
    if why_not:
        return _call("dense_to_jagged", None, {}, reference, why_not)
    params = {"D": str(dense.shape[2]), "dtype": _FLOAT_DTYPES[str(dense.dtype)]}
    if str(offsets.dtype) == "torch.int32":
        params["index_dtype"] = "int32"
    # total_L (fbgemm's argument) sizes the output; without it, one read of offsets[-1].
    total = int(offsets[-1]) if total_L is None else total_L
    inputs = {"dense": _unit_stride(dense), "offsets": offsets.contiguous(), "L": total}
    return _call("dense_to_jagged", OperatorSpec("dense_to_jagged", 1, params), inputs, reference)


def dense_to_jagged(dense: torch.Tensor, offsets: torch.Tensor, *, total_L: int | None = None) -> torch.Tensor:
    """values [L, D] with row b's item i = dense[b, i] (0 past the dense length). As
    kreg.ops.reference.dense_to_jagged, on the served kernel when there is one."""
    return _route("dense_to_jagged", _eager_dense_to_jagged, (dense, offsets), {"total_L": total_L}, (dense, offsets))  # type: ignore[no-any-return]


def _eager_dense_to_jagged(dense: torch.Tensor, offsets: torch.Tensor, *, total_L: int | None = None) -> torch.Tensor:
    """dense_to_jagged's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().dense_to_jagged(dense, offsets, total_L=total_L)
    return current.run(_prepare_dense_to_jagged(dense, offsets, total_L=total_L))


_PREPARE["jagged_truncate"] = _prepare_jagged_truncate
_PREPARE["jagged_to_padded_dense"] = _prepare_jagged_to_padded_dense
_PREPARE["dense_to_jagged"] = _prepare_dense_to_jagged
__all__ += ["dense_to_jagged", "jagged_to_padded_dense", "jagged_truncate"]


# --- jagged_flash_attention / hstu_attention ----------------------------------------------------


def _attention_why_not(q: Any, k: Any, v: Any, offsets: Any, dims: int) -> str:
    if not all(hasattr(t, "dim") for t in (q, k, v, offsets)):
        return "q, k, v and offsets must be tensors"
    if any(t.dim() != dims for t in (q, k, v)) or offsets.dim() != 1 or offsets.numel() < 1:
        return f"want q, k, v of {dims} dims and offsets [B+1]; got {tuple(q.shape)}, {tuple(offsets.shape)}"
    if not (q.shape == k.shape == v.shape) or not (q.dtype == k.dtype == v.dtype):
        return "q, k, v must share one shape and dtype"
    if str(q.dtype) not in _FLOAT_DTYPES:
        return f"no kernel for {q.dtype}"
    if str(offsets.dtype) not in _INDEX_DTYPES:
        return f"offsets must be int32 or int64, got {offsets.dtype}"
    if 0 in q.shape[1:]:
        return "zero heads or zero width"
    return _needs_grad(q, k, v)


def _attention_params(q: torch.Tensor, offsets: torch.Tensor) -> dict[str, str]:
    params = {"D": str(q.shape[-1]), "dtype": _FLOAT_DTYPES[str(q.dtype)]}
    if q.dim() == 3:
        params["H"] = str(q.shape[1])
    if str(offsets.dtype) == "torch.int32":
        params["index_dtype"] = "int32"
    return params


def _valid_max_len(max_len: Any) -> str:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        return f"max_len must be an int >= 1, got {max_len!r}"
    if max_len >= 2**31:
        return f"max_len={max_len} does not fit the kernels' int32"
    return ""


def _prepare_jagged_flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, *, max_len: int
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().jagged_flash_attention(q, k, v, offsets, max_len=max_len)

    why_not = _attention_why_not(q, k, v, offsets, 2) or _valid_max_len(max_len)
    if why_not:
        return _call("jagged_flash_attention", None, {}, reference, why_not)
    inputs = {
        "q": _unit_stride(q),
        "k": _unit_stride(k),
        "v": _unit_stride(v),
        "offsets": offsets.contiguous(),
        "max_N": max_len,
    }
    spec = OperatorSpec("jagged_flash_attention", 1, _attention_params(q, offsets))
    return _call("jagged_flash_attention", spec, inputs, reference)


def jagged_flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, *, max_len: int) -> torch.Tensor:
    """Per jagged row truncated to max_len items, softmax(Q Kᵀ) / max_len @ V (fbgemm SLL,
    no 1/sqrt(d)); q, k, v [L, D]; items past max_len are 0. As
    kreg.ops.reference.jagged_flash_attention, on the served kernel when there is one."""
    return _route("jagged_flash_attention", _eager_jagged_flash_attention, (q, k, v, offsets), {"max_len": max_len}, (q, k, v, offsets))  # type: ignore[no-any-return]


def _eager_jagged_flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, *, max_len: int
) -> torch.Tensor:
    """jagged_flash_attention's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().jagged_flash_attention(q, k, v, offsets, max_len=max_len)
    return current.run(_prepare_jagged_flash_attention(q, k, v, offsets, max_len=max_len))


def _prepare_hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    *,
    max_len: int,
    num_targets: torch.Tensor | None = None,
    alpha: float | None = None,
) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().hstu_attention(q, k, v, offsets, max_len=max_len, num_targets=num_targets, alpha=alpha)

    why_not = _attention_why_not(q, k, v, offsets, 3) or _valid_max_len(max_len)
    if not why_not and num_targets is not None:
        if not hasattr(num_targets, "dim") or str(num_targets.dtype) not in _INDEX_DTYPES:
            why_not = "num_targets must be an int32 or int64 tensor"
        elif num_targets.shape != (offsets.numel() - 1,):
            why_not = f"num_targets must be [B], got {tuple(num_targets.shape)}"
    if not why_not and alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))):
        why_not = f"alpha must be a number, got {alpha!r}"
    if why_not:
        return _call("hstu_attention", None, {}, reference, why_not)
    import torch

    inputs = {
        "q": _unit_stride(q),
        "k": _unit_stride(k),
        "v": _unit_stride(v),
        "offsets": offsets.contiguous(),
        # One pointer type for every call: int64 [B] (a negligible copy when int32); zeros
        # without targets, which is the same mask.
        "num_targets": (
            num_targets.to(torch.int64).contiguous()
            if num_targets is not None
            else torch.zeros(offsets.numel() - 1, dtype=torch.int64, device=offsets.device)
        ),
        "max_N": max_len,
        "alpha": float(alpha) if alpha is not None else None,
    }
    spec = OperatorSpec("hstu_attention", 1, _attention_params(q, offsets))
    return _call("hstu_attention", spec, inputs, reference)


def hstu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, *, max_len: int, num_targets: torch.Tensor | None = None, alpha: float | None = None) -> torch.Tensor:
    """HSTU attention forward: per row and head, (silu(alpha Q Kᵀ) / max_len * mask) V with the
    causal + num_targets mask; q, k, v [L, H, D]; alpha defaults to 1/sqrt(D). As
    kreg.ops.reference.hstu_attention, on the served kernel when there is one."""
    return _route("hstu_attention", _eager_hstu_attention, (q, k, v, offsets), {"max_len": max_len, "num_targets": num_targets, "alpha": alpha}, (q, k, v, offsets, num_targets))  # type: ignore[no-any-return]


def _eager_hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    *,
    max_len: int,
    num_targets: torch.Tensor | None = None,
    alpha: float | None = None,
) -> torch.Tensor:
    """hstu_attention's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().hstu_attention(q, k, v, offsets, max_len=max_len, num_targets=num_targets, alpha=alpha)
    return current.run(
        _prepare_hstu_attention(q, k, v, offsets, max_len=max_len, num_targets=num_targets, alpha=alpha)
    )


_PREPARE["jagged_flash_attention"] = _prepare_jagged_flash_attention
_PREPARE["hstu_attention"] = _prepare_hstu_attention
__all__ += ["hstu_attention", "jagged_flash_attention"]


# --- bucketize_sparse_features / batched_dense_bucketize ----------------------------------------


def _prepare_bucketize_sparse_features(
    offsets: torch.Tensor,
    ids: torch.Tensor,
    num_buckets: int,
    *,
    block_sizes: torch.Tensor | None = None,
    positions: bool = False,
) -> OpCall:
    def reference() -> tuple[torch.Tensor, ...]:
        return _reference().bucketize_sparse_features(
            offsets, ids, num_buckets, block_sizes=block_sizes, positions=positions
        )

    why_not = ""
    if not (hasattr(offsets, "dim") and hasattr(ids, "dim")):
        why_not = "offsets and ids must be tensors"
    elif offsets.dim() != 1 or offsets.numel() < 1 or str(offsets.dtype) not in _INDEX_DTYPES:
        why_not = f"offsets must be int32/int64 [R+1], got {offsets.dtype} {tuple(offsets.shape)}"
    elif ids.dim() != 1 or str(ids.dtype) != "torch.int64":
        why_not = f"ids must be int64 [L], got {ids.dtype} {tuple(ids.shape)}"
    elif isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or not 1 <= num_buckets < 2**31:
        why_not = f"num_buckets must be an int in [1, 2^31), got {num_buckets!r}"
    elif block_sizes is not None and (
        not hasattr(block_sizes, "dim") or block_sizes.dim() != 1 or str(block_sizes.dtype) not in _INDEX_DTYPES
        or block_sizes.numel() < 1 or (offsets.numel() - 1) % block_sizes.numel()
    ):
        why_not = "block_sizes must be int32/int64 [T] with T dividing the number of rows"
    if why_not:
        return _call("bucketize_sparse_features", None, {}, reference, why_not)
    params = {"dtype": "int64"}
    if str(offsets.dtype) == "torch.int32":
        params["index_dtype"] = "int32"
    inputs: dict[str, Any] = {"ids": ids.contiguous(), "offsets": offsets.contiguous(), "S": num_buckets}
    if block_sizes is not None:
        params["block"] = "1"
        inputs["block_sizes"] = block_sizes.contiguous()
    if positions:
        params["positions"] = "1"
    spec = OperatorSpec("bucketize_sparse_features", 1, params)
    call = _call("bucketize_sparse_features", spec, inputs, reference)
    from dataclasses import replace

    return replace(call, output=("new_lengths", "new_offsets", "new_ids", "positions"))


def bucketize_sparse_features(offsets: torch.Tensor, ids: torch.Tensor, num_buckets: int, *, block_sizes: torch.Tensor | None = None, positions: bool = False) -> tuple[torch.Tensor, ...]:
    """fbgemm's (block_)bucketize_sparse_features: (new_lengths [S*R], new_offsets [S*R+1],
    new_ids [L]) bucket-major, plus positions [L] when asked. As
    kreg.ops.reference.bucketize_sparse_features, on the served kernel when there is one."""
    return _route("bucketize_sparse_features", _eager_bucketize_sparse_features, (offsets, ids, num_buckets), {"block_sizes": block_sizes, "positions": positions}, (offsets, ids, block_sizes))  # type: ignore[no-any-return]


def _eager_bucketize_sparse_features(
    offsets: torch.Tensor,
    ids: torch.Tensor,
    num_buckets: int,
    *,
    block_sizes: torch.Tensor | None = None,
    positions: bool = False,
) -> tuple[torch.Tensor, ...]:
    """bucketize_sparse_features's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().bucketize_sparse_features(
            offsets, ids, num_buckets, block_sizes=block_sizes, positions=positions
        )
    return current.run(
        _prepare_bucketize_sparse_features(offsets, ids, num_buckets, block_sizes=block_sizes, positions=positions)
    )


def _prepare_batched_dense_bucketize(x: torch.Tensor, border_values: torch.Tensor, border_offsets: torch.Tensor) -> OpCall:
    def reference() -> torch.Tensor:
        return _reference().batched_dense_bucketize(x, border_values, border_offsets)

    why_not = ""
    if not all(hasattr(t, "dim") for t in (x, border_values, border_offsets)):
        why_not = "x, border_values and border_offsets must be tensors"
    elif x.dim() != 2 or border_values.dim() != 1 or border_offsets.dim() != 1 or border_offsets.numel() != x.shape[1] + 1:
        why_not = f"want x [B, F], border_values [N], border_offsets [F+1]; got {tuple(x.shape)}, {tuple(border_values.shape)}, {tuple(border_offsets.shape)}"
    elif str(x.dtype) not in _FLOAT_DTYPES or border_values.dtype != x.dtype:
        why_not = f"no kernel for x of {x.dtype} with borders of {border_values.dtype}"
    elif str(border_offsets.dtype) not in _INDEX_DTYPES:
        why_not = f"border_offsets must be int32 or int64, got {border_offsets.dtype}"
    elif x.shape[1] == 0:
        why_not = "no features"
    if why_not:
        return _call("batched_dense_bucketize", None, {}, reference, why_not)
    params = {"F": str(x.shape[1]), "dtype": _FLOAT_DTYPES[str(x.dtype)]}
    if str(border_offsets.dtype) == "torch.int32":
        params["index_dtype"] = "int32"
    inputs = {"x": _unit_stride(x), "border_values": border_values.contiguous(), "border_offsets": border_offsets.contiguous()}
    return _call("batched_dense_bucketize", OperatorSpec("batched_dense_bucketize", 1, params), inputs, reference)


def batched_dense_bucketize(x: torch.Tensor, border_values: torch.Tensor, border_offsets: torch.Tensor) -> torch.Tensor:
    """out[b, f] = torch.bucketize(x[b, f], borders_f, right=False), int64 [B, F], with
    feature f's sorted borders border_values[border_offsets[f]:border_offsets[f+1]]. As
    kreg.ops.reference.batched_dense_bucketize, on the served kernel when there is one."""
    return _route("batched_dense_bucketize", _eager_batched_dense_bucketize, (x, border_values, border_offsets), {}, (x, border_values, border_offsets))  # type: ignore[no-any-return]


def _eager_batched_dense_bucketize(x: torch.Tensor, border_values: torch.Tensor, border_offsets: torch.Tensor) -> torch.Tensor:
    """batched_dense_bucketize's dispatch, the body of its torch op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return _reference().batched_dense_bucketize(x, border_values, border_offsets)
    return current.run(_prepare_batched_dense_bucketize(x, border_values, border_offsets))


_PREPARE["bucketize_sparse_features"] = _prepare_bucketize_sparse_features
_PREPARE["batched_dense_bucketize"] = _prepare_batched_dense_bucketize
__all__ += ["batched_dense_bucketize", "bucketize_sparse_features"]


# --- backward: the gradient kernels (kreg.ops.backward) -----------------------------------------


def _prepare_backward(name: str, grad: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any], reference: Callable[[], Any]) -> OpCall:
    """The call of op `name`'s backward kernel for the forward call (args, kwargs) and the
    gradient of its output: the forward call's key and inputs, plus grad_out. `reference`
    (the reference's backward) returns the same tuple of gradients as the kernel would."""
    from dataclasses import replace

    from kreg.ops.backward import GRAD_OUT, WRT, backward_spec, grad_name

    op = f"{name}_backward"
    forward = _PREPARE[name](*args, **kwargs)
    if forward.spec is None:
        return _call(op, None, {}, reference, forward.why_not)
    spec = backward_spec(forward.spec)
    if spec is None:
        return _call(op, None, {}, reference, f"no backward kernel for {forward.spec}: the reference's backward serves it")
    inputs = {**forward.inputs, GRAD_OUT: grad.contiguous()}
    names = tuple(grad_name(n) for n in WRT[forward.spec.name].wrt if forward.inputs.get(n) is not None)
    return replace(_call(op, spec, inputs, reference), output=names)


def _eager_backward(name: str, grad: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any], reference: Callable[[], Any]) -> tuple[Any, ...]:
    """The gradients of op `name`'s differentiated inputs (kreg.ops.backward.WRT, those the
    call has) on the served backward kernel, else from `reference`; the body of the
    torch.ops.kreg.<name>_backward op (kreg.ops.library)."""
    current = _PROVIDER
    if current is None:
        return reference()  # type: ignore[no-any-return]
    return current.run(_prepare_backward(name, grad, args, kwargs, reference))  # type: ignore[no-any-return]


if "torch" in sys.modules:  # imported after torch: register now, before any torch.compile traces a call
    register_torch_ops()
