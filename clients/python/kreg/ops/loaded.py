"""A served artifact made callable: fetch its blobs, load its kernels, run its launch plan.

    op = load_artifact(resolution.artifact, client.fetch_blob, client.runtime.toolchain)
    outputs = op(params, {"values": values, "offsets": offsets})

Two ways to run an artifact's kernels:

- binary: when the artifact has binaries built by the host's toolchain, each kernel's
  binary and Triton metadata are fetched (verified against their digests by `fetch`) and
  loaded with kreg.loader.load_compiled: no compile, no autotuning. Binaries load only on a
  GPU host whose device is the artifact's arch; on a CPU host load_compiled raises LoadError
  (the GPU bench exercises this path, the CPU tests cannot).
- source: otherwise the kernel source is fetched, vetted (check_source) and imported; Triton
  JIT-compiles it on first launch for the recorded constexprs and launch options. On CPU
  tensors this runs only under Triton's interpreter (TRITON_INTERPRET=1).

A binary was compiled for the argument types of one sample shape: a launch whose arguments
do not fit it (an int past int32 for an "i32" parameter, a tensor of another dtype or on
another device, a shape-derived constexpr with another value) runs through the JIT source
instead, for that call only (`binary_mismatch` says why; logged once per kernel).

torch and triton are imported only when a kernel is loaded or launched.
"""

from __future__ import annotations

import ast
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kreg.loader import LoadError, SourceError, check_source, import_source, load_compiled
from kreg.model import DIVISIBILITY, Artifact, Digest, KernelBinary, LaunchParam, Toolchain
from kreg.ops.launch import INT32, INT64, Config, KernelLaunch, Params, triton_type
from kreg.ops.plans import PLANS, LaunchPlan

log = logging.getLogger(__name__)

KernelPath = Literal["binary", "source"]
Fetch = Callable[[Digest], bytes]


def literal_constexprs(kernel: KernelBinary) -> dict[str, Any]:
    """The constexprs baked into a kernel (LaunchAbi.constexprs holds their repr)."""
    values = {}
    for name, text in kernel.abi.constexprs:
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise LoadError(f"{kernel.entry_point}: constexpr {name}={text!r} is not a literal") from None
    return values


def config_of(artifact: Artifact) -> Config:
    """The config the artifact was built with: the union of its kernels' constexprs (the
    tunables and the ones its launches fixed at the sample shape) and the first kernel's
    num_warps / num_stages. Launch plans read it for their grids."""
    if not artifact.kernels:
        raise LoadError(f"artifact {artifact.artifact_id[:12]} has no kernels")
    constexprs: dict[str, Any] = {}
    for kernel in artifact.kernels:
        for name, value in literal_constexprs(kernel).items():
            constexprs.setdefault(name, value)
    first = artifact.kernels[0].abi
    return Config(constexprs, first.num_warps, first.num_stages)


def binary_mismatch(
    params: Sequence[LaunchParam],
    baked: Mapping[str, Any],
    launch: KernelLaunch,
    device: Any = None,
) -> str | None:
    """Why a compiled binary cannot take `launch` (None when it can).

    params are the binary's runtime parameters with the Triton types it was compiled for;
    baked its constexprs. Ints typed "i32" must fit int32 (Triton types an int by its value
    when compiling, so a binary built at a small sample shape takes i32 where a large call
    needs i64), pointers must point at the element type compiled for and at memory on
    `device` (the torch device the binary was loaded on; None skips the check), an argument
    the binary assumes divisible by 16 must be (a pointer's address, an int's value), and
    every constexpr the launch fixes must equal the baked value.
    """
    if len(launch.args) != len(params):
        return f"{len(launch.args)} runtime args for the binary's {len(params)} params"
    for param, arg in zip(params, launch.args):
        want = param.triton_type
        try:
            got = triton_type(arg)
        except (TypeError, KeyError):
            return f"param {param.name}: cannot pass {type(arg).__name__} {getattr(arg, 'dtype', '')}".rstrip()
        if param.divisible and not divisible(arg):
            return f"param {param.name}: the binary assumes a multiple of {DIVISIBILITY}, got {_value_of(arg)}"
        if want.startswith("*"):
            if got != want:
                return f"param {param.name}: a {got} tensor for the binary's {want}"
            if arg.device.type == "cpu":
                return f"param {param.name}: tensor on the cpu; binaries run on the GPU"
            if device is not None and arg.device != device:
                return f"param {param.name}: tensor on {arg.device}, binary loaded on {device}"
        elif want == "i32":
            if got not in ("i32", "i1") or not INT32[0] <= int(arg) <= INT32[1]:
                return f"param {param.name}={arg!r} does not fit the binary's i32"
        elif want == "i64":
            if isinstance(arg, bool) or not isinstance(arg, int) or not INT64[0] <= arg <= INT64[1]:
                return f"param {param.name}={arg!r} does not fit the binary's i64"
        elif got != want:
            return f"param {param.name}: {got} for the binary's {want}"
    for name, value in launch.constexprs.items():
        if name not in baked:
            return f"constexpr {name} is not baked into the binary"
        if baked[name] != value:
            return f"constexpr {name}={value!r}; the binary was built with {baked[name]!r}"
    return None


def divisible(arg: Any) -> bool:
    """Whether an argument is what Triton's JIT would specialize as divisible by 16: a
    tensor whose address is, an int (not a bool) whose value is."""
    if hasattr(arg, "data_ptr"):
        return bool(arg.data_ptr() % DIVISIBILITY == 0)
    return isinstance(arg, int) and not isinstance(arg, bool) and arg % DIVISIBILITY == 0


def _value_of(arg: Any) -> str:
    return f"address {arg.data_ptr():#x}" if hasattr(arg, "data_ptr") else repr(arg)


@dataclass
class LoadedKernel:
    """One entry point: its ABI, its baked constexprs, and what launches it."""

    meta: KernelBinary
    constexprs: dict[str, Any]
    compiled: Any = None  # triton CompiledKernel (binary path)
    jit: Any = None  # triton JITFunction (source path; imported on first need for binaries)
    device: Any = None  # torch device the binary was loaded on


@dataclass(frozen=True)
class PlannedLaunch:
    launch: KernelLaunch
    path: KernelPath
    reason: str  # why the JIT source runs for a binary artifact ("" otherwise)


@dataclass
class LoadedOp:
    """An artifact's kernels, ready to launch through the operator's launch plan.

    `path` is how its kernels run: "binary" or "source". A binary artifact may still run a
    single call through the source (see binary_mismatch); `planned` says which, per launch.
    """

    artifact: Artifact
    plan: LaunchPlan
    config: Config
    path: KernelPath
    kernels: dict[str, LoadedKernel]
    fetch: Fetch
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _warned: set[str] = field(default_factory=set, repr=False)

    def __call__(self, params: Params, inputs: Mapping[str, Any]) -> dict[str, Any]:
        outputs, planned = self.prepare(params, inputs)
        for p in planned:
            self.launch(p)
        return outputs

    def prepare(self, params: Params, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], list[PlannedLaunch]]:
        """Outputs allocated (not written) and the launches that would fill them, each with
        the path it would take. Launches with an empty grid are dropped: nothing to compute,
        and some launchers refuse a zero grid."""
        outputs = self.plan.allocate_outputs(params, inputs)
        planned = []
        for launch in self.plan.launches(params, self.config, inputs, outputs):
            if math.prod(launch.grid) == 0:
                continue
            kernel = self.kernels.get(launch.entry_point)
            if kernel is None:
                raise LoadError(f"launch plan calls {launch.entry_point!r}; the artifact has {sorted(self.kernels)}")
            if self.path == "source":
                planned.append(PlannedLaunch(launch, "source", ""))
                continue
            why = binary_mismatch(kernel.meta.abi.params, kernel.constexprs, launch, kernel.device)
            planned.append(PlannedLaunch(launch, "binary", "") if why is None else PlannedLaunch(launch, "source", why))
        return outputs, planned

    def launch(self, planned: PlannedLaunch) -> None:
        """Run one prepared launch on the path `prepare` chose for it."""
        launch = planned.launch
        kernel = self.kernels[launch.entry_point]
        if planned.path == "binary":
            grid = tuple(launch.grid) + (1,) * (3 - len(launch.grid))
            kernel.compiled[grid](*launch.args)
            return
        if planned.reason and launch.entry_point not in self._warned:
            self._warned.add(launch.entry_point)
            log.warning(
                "%s: %s runs through the JIT source for such calls: %s",
                self.artifact.key, launch.entry_point, planned.reason,
            )
        fn = self._jit(kernel)
        # The kernel's baked constexprs include the config's tunables and the launch-fixed
        # ones at the sample shape; this launch's own values win.
        constexprs = {**kernel.constexprs, **launch.constexprs}
        abi = kernel.meta.abi
        fn[tuple(launch.grid)](*launch.args, **constexprs, num_warps=abi.num_warps, num_stages=abi.num_stages)

    def _jit(self, kernel: LoadedKernel) -> Any:
        if kernel.jit is None:
            with self._lock:
                if kernel.jit is None:
                    kernel.jit = _import_entry_point(self.fetch(kernel.meta.source), kernel.meta.entry_point)
        return kernel.jit


def _import_entry_point(source_bytes: bytes, entry_point: str) -> Any:
    try:
        source = source_bytes.decode()
    except UnicodeDecodeError:
        raise SourceError("kernel source is not UTF-8 text") from None
    check_source(source)
    module = import_source(source)
    from triton.runtime.jit import KernelInterface  # JITFunction, or InterpretedFunction

    fn = getattr(module, entry_point, None)
    if not isinstance(fn, KernelInterface):
        raise SourceError(f"the source defines no @triton.jit function {entry_point!r}")
    return fn


def uses_binaries(artifact: Artifact, runtime_toolchain: Toolchain | None) -> bool:
    """kreg.resolve's rule: binaries only for the toolchain that built them."""
    return artifact.has_binaries and runtime_toolchain is not None and runtime_toolchain == artifact.toolchain


def needed_blobs(artifact: Artifact, runtime_toolchain: Toolchain | None) -> list[Digest]:
    """The blobs load_artifact fetches: binaries and metadata, else the sources."""
    if uses_binaries(artifact, runtime_toolchain):
        return [d for k in artifact.kernels for d in (k.binary, k.metadata) if d is not None]
    return list(dict.fromkeys(k.source for k in artifact.kernels))


def load_artifact(artifact: Artifact, fetch: Fetch, runtime_toolchain: Toolchain | None) -> LoadedOp:
    """Make `artifact` launchable on this host (see the module docstring for the two paths).

    `fetch` returns a blob's verified bytes (Client.fetch_blob). Raises LoadError when a
    binary cannot be loaded here, SourceError when the source is not a vetted Triton module;
    what fetch raises (kreg errors) passes through.
    """
    name = artifact.key.operator.name
    plan = PLANS.get(name)
    if plan is None:
        raise LoadError(f"no launch plan for operator {name!r} in this kreg (known: {', '.join(sorted(PLANS))})")
    config = config_of(artifact)
    path: KernelPath = "binary" if uses_binaries(artifact, runtime_toolchain) else "source"
    kernels: dict[str, LoadedKernel] = {}
    sources: dict[Digest, bytes] = {}
    for meta in artifact.kernels:
        kernel = LoadedKernel(meta, literal_constexprs(meta))
        if path == "binary":
            assert meta.binary is not None and meta.metadata is not None
            kernel.compiled = load_compiled(fetch(meta.binary), fetch(meta.metadata), meta.abi.params)
            kernel.device = _current_device()
        else:
            if meta.source not in sources:
                sources[meta.source] = fetch(meta.source)
            kernel.jit = _import_entry_point(sources[meta.source], meta.entry_point)
        kernels[meta.entry_point] = kernel
    return LoadedOp(artifact, plan, config, path, kernels, fetch)


def _current_device() -> Any:
    """The torch device a just-loaded binary is bound to (the current one)."""
    import torch

    return torch.device("cuda", torch.cuda.current_device())
