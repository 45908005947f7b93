"""Turning a served artifact into something launchable: a compiled binary loaded without
compiling (same toolchain and arch), or its Triton source imported for the JIT.

torch and triton are imported inside the functions, only when a kernel is really loaded:
importing kreg stays cheap on hosts that only resolve or cache.
"""

from __future__ import annotations

import ast
import hashlib
import json
import linecache
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kreg.cuda_launch import CudaError, CudaKernel, unsupported
from kreg.model import LaunchParam
from kreg.runtime import installed_triton

if TYPE_CHECKING:
    from triton.compiler import CompiledKernel

BINARY_FORMATS = {"cuda": "cubin", "hip": "hsaco"}
MESSAGE_LIMIT_CHARS = 8 * 1024
# Serialises registering a source with linecache and importing it (see import_source).
_IMPORT_LOCK = threading.Lock()


class SourceError(ValueError):
    """Kernel source that is not a plain Triton kernel module, or that fails to import."""


class LoadError(RuntimeError):
    """A compiled kernel that cannot be made launchable on this host, with the reason."""


def read_metadata(metadata_json: bytes) -> dict[str, Any]:
    """The Triton metadata stored beside a binary, checked to be loadable by this host: only
    the Triton version that built a binary may load it (the metadata's fields and the
    launchers' calling convention change between versions). Read from package metadata, so
    checking imports no triton."""
    try:
        metadata: dict[str, Any] = json.loads(metadata_json)
        backend, built_with = metadata["target"]["backend"], metadata["triton_version"]
        missing = {"name", "hash", "num_warps"} - metadata.keys()
        if missing:
            raise KeyError(", ".join(sorted(missing)))
    except (ValueError, KeyError, TypeError) as e:
        raise LoadError(f"metadata is not Triton kernel metadata: {e!r}") from None
    here = installed_triton() or "none"
    if built_with != here:
        raise LoadError(f"binary was built by triton {built_with}; this host has triton {here}")
    if backend not in BINARY_FORMATS:
        raise LoadError(f"unknown backend {backend!r} in metadata; known: {', '.join(BINARY_FORMATS)}")
    return metadata


def unpack_compiled(binary: bytes, metadata_json: bytes, params: Sequence[LaunchParam]) -> CompiledKernel:
    """Rebuild Triton's CompiledKernel from stored bytes, without compiling and without a device.

    params are the runtime parameters (launch_params of the compile signature, or the
    artifact's LaunchAbi.params): the kernel is launched as `kernel[grid](*runtime_args)`.
    """
    from triton.compiler import CompiledKernel

    metadata = read_metadata(metadata_json)
    name, kernel_hash, backend = metadata["name"], metadata["hash"], metadata["target"]["backend"]
    # CompiledKernel reads both files in its constructor, so the directory can go right after.
    with tempfile.TemporaryDirectory(prefix="kreg-load-") as tmp:
        files = {f"{name}.json": metadata_json, f"{name}.{BINARY_FORMATS[backend]}": binary}
        group = {}
        for file_name, data in files.items():
            path = Path(tmp) / file_name
            path.write_bytes(data)
            group[file_name] = str(path)
        return CompiledKernel(_LaunchSource(params), group, kernel_hash)


def load_compiled(binary: bytes, metadata_json: bytes, params: Sequence[LaunchParam]) -> CudaKernel | CompiledKernel:
    """A binary bound to the current device now, so one that cannot run here (no driver,
    another arch, too much shared memory, an ABI the binary does not have) fails at load
    rather than at first launch. Launched as `kernel[grid](*runtime_args)`.

    A CUDA kernel that a plain cuLaunchKernel can run is loaded through the driver alone
    (kreg.cuda_launch: nothing compiled, triton not imported); anything else through Triton's
    CompiledKernel, whose launcher Triton may first have to build.
    """
    metadata = read_metadata(metadata_json)
    target = metadata["target"]
    if target["backend"] == "cuda" and unsupported(metadata, params) is None:
        return _load_with_driver(binary, metadata, params)
    return _load_with_triton(binary, metadata_json, params)


def _load_with_driver(binary: bytes, metadata: dict[str, Any], params: Sequence[LaunchParam]) -> CudaKernel:
    import torch

    built_for = f"cuda/{metadata['target']['arch']}"
    if not torch.cuda.is_available():
        raise LoadError(f"cannot load a {built_for} binary: no GPU driver is active (torch sees no CUDA device)")
    device = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(device)
    here = f"cuda/{major * 10 + minor}"
    if here != built_for:
        raise LoadError(f"binary is for {built_for}; this device is {here}")
    try:
        return CudaKernel(binary, metadata, params, device)
    except CudaError as e:
        raise LoadError(f"loading {metadata['name']} on the device failed: {e}") from None


def _load_with_triton(binary: bytes, metadata_json: bytes, params: Sequence[LaunchParam]) -> CompiledKernel:
    from triton.runtime.driver import driver

    kernel = unpack_compiled(binary, metadata_json, params)
    built_for = kernel.metadata.target
    try:
        here = driver.active.get_current_target()
    except Exception as e:  # noqa: BLE001 - RuntimeError ("0 active drivers") or the driver's own import failure
        raise LoadError(
            f"cannot load a {built_for.backend}/{built_for.arch} binary: no GPU driver is active ({e})"
        ) from None
    if (here.backend, here.arch) != (built_for.backend, built_for.arch):
        raise LoadError(
            f"binary is for {built_for.backend}/{built_for.arch}; this device is {here.backend}/{here.arch}"
        )
    try:
        kernel._init_handles()  # what kernel[grid] would do on first launch
    except Exception as e:  # noqa: BLE001 - the driver's load errors and Triton's OutOfResources alike
        raise LoadError(f"loading {kernel.name} on the device failed: {type(e).__name__}: {e}") from None
    return kernel


@dataclass(frozen=True)
class _LaunchSource:
    """Stands in for the ASTSource a CompiledKernel is normally built from: the launchers of 3.6
    and 3.9 read only `signature` (and `constants`, when present) to marshal arguments. Listing
    the runtime params alone makes a launch take runtime arguments alone; the launchers would
    skip constexpr entries anyway."""

    params: Sequence[LaunchParam]

    @property
    def signature(self) -> dict[str, str]:
        return {p.name: p.triton_type for p in self.params}


def check_source(source: str) -> None:
    """Reject source that would do anything but define kernels when imported.

    Candidate source can come from a proposer (an LLM), and importing a module runs its top
    level, including decorators, defaults and annotations; @triton.jit bodies are compiled by
    Triton, never run by Python. So before anything executes, allow only triton imports,
    docstrings and @triton.jit functions whose defaults are literals and whose annotations are
    names (tl.constexpr). This makes the contract checkable; it is not a sandbox (candidates
    run in an isolated child process for that).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise SourceError(f"syntax error at line {e.lineno}: {e.msg}") from None
    for node in tree.body:
        if _is_allowed_top_level(node):
            continue
        raise SourceError(
            f"line {node.lineno}: a kernel module may hold only triton imports, docstrings and "
            f"@triton.jit functions, not {type(node).__name__}",
        )


def _is_allowed_top_level(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(alias.name.split(".")[0] == "triton" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "triton"
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    if isinstance(node, ast.FunctionDef):
        args = node.args
        params = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        annotations = (node.returns, *(p.annotation for p in params if p is not None))
        return (
            len(node.decorator_list) == 1
            and _is_triton_jit(node.decorator_list[0])
            and all(_is_literal(d) for d in (*args.defaults, *args.kw_defaults) if d is not None)
            and all(_is_annotation(a) for a in annotations if a is not None)
        )
    return False


def _is_triton_jit(decorator: ast.expr) -> bool:
    """`@triton.jit` or `@triton.jit(key=literal, ...)`."""
    if isinstance(decorator, ast.Call):
        return (
            _is_triton_jit(decorator.func)
            and not decorator.args
            and all(_is_literal(k.value) for k in decorator.keywords)
        )
    return (
        isinstance(decorator, ast.Attribute)
        and decorator.attr == "jit"
        and isinstance(decorator.value, ast.Name)
        and decorator.value.id == "triton"
    )


def _is_annotation(node: ast.expr) -> bool:
    """A dotted name (tl.constexpr) or a string: evaluating it runs nothing."""
    if isinstance(node, ast.Attribute):
        return _is_annotation(node.value)
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def import_source(source: str) -> ModuleType:
    """Execute the source as a fresh module that inspect.getsource can read.

    @triton.jit reads the function's source with inspect.getsourcelines when it decorates, and
    Triton writes the file name into the binary's line info. The source is therefore served
    from linecache under a name derived from its digest (no temp file): the same source gives
    the same binary on every host, so content digests dedupe. The entry lives only while the
    module executes; the lock keeps two threads importing the same source from racing on it.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    file_name = f"kreg_kernel_{digest}.py"
    module = ModuleType(f"kreg_kernel_{digest}")
    module.__file__ = file_name
    with _IMPORT_LOCK:
        linecache.cache[file_name] = (len(source), None, source.splitlines(keepends=True), file_name)
        try:
            exec(compile(source, file_name, "exec"), module.__dict__)  # noqa: S102 - check_source vetted the top level
        except Exception as e:  # noqa: BLE001 - an import or decoration failure is the source's error
            raise SourceError(clip(describe_error(e))) from None
        finally:
            linecache.cache.pop(file_name, None)
    return module


def describe_error(error: BaseException) -> str:
    """The error and its causes, outermost first: Triton reports a failure inside a called
    @triton.jit helper as a chain, and only the innermost link names what was wrong."""
    links: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\ncaused by ".join(links)


def clip(text: str, limit: int = MESSAGE_LIMIT_CHARS) -> str:
    """Bound what goes into candidate logs and artifacts; keep both ends, where the outermost
    context and the innermost cause of an error are."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"
