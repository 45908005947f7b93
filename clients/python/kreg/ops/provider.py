"""The process-wide kernel provider behind kreg.ops: key -> resolution -> loaded kernels.

One provider serves a host kind (platform, arch, model). Each operator spec is resolved once
(`Client.get_kernel`, else the lockfile's pin when there is no client or the registry does
not answer), its artifact loaded once (kreg.ops.loaded), and both kept for the life of the
process; concurrent first calls for one key wait for a single resolution. Every call records
a Decision (binary, source or reference, and why) that `last_decision` returns.

An answer that came from an unreachable registry with nothing pinned (or blobs that could
not be fetched for that reason) is asked again after `retry_after_s`; registry answers,
pins and load failures are kept until `refresh()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kreg.keys import KernelKey, OperatorSpec
from kreg.model import Digest, Resolution, ResolutionKind, Toolchain

if TYPE_CHECKING:
    from kreg.signing import TrustedKeys
    from kreg.cache import BlobCache
    from kreg.client import Client
    from kreg.lockfile import Lockfile
    from kreg.ops.loaded import LoadedOp

log = logging.getLogger("kreg.ops")

DecisionPath = Literal["binary", "source", "reference"]


@dataclass(frozen=True)
class Decision:
    """How one call of an operator ran, and why."""

    operator: str  # the operator spec, e.g. "jagged_sum@1{D=128,dtype=fp32}" (or the op name)
    path: DecisionPath
    reason: str
    key: KernelKey | None = None
    artifact_id: str = ""

    def __str__(self) -> str:
        served = f" ({self.artifact_id[:12]})" if self.artifact_id else ""
        return f"{self.key or self.operator}: {self.path}{served}: {self.reason}"


@dataclass(frozen=True)
class OpCall:
    """One call of a public op, prepared: the spec the inputs name (None when no kernel can
    take them, with why_not), the inputs as the launch plan names them, and the reference."""

    name: str
    spec: OperatorSpec | None
    inputs: Mapping[str, Any]
    reference: Callable[[], Any]
    why_not: str = ""
    # The output returned: one name, or several returned as a tuple in this order (the
    # reference returns the same tuple); a name the outputs lack is skipped (optional outputs).
    output: str | tuple[str, ...] = "out"


def interpreting() -> bool:
    """Whether Triton runs @triton.jit kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass
class _Entry:
    resolution: Resolution | None
    loaded: LoadedOp | None
    decision: Decision  # the key's standing: binary / source, or reference and why
    expires_at: float | None = None  # monotonic time to ask again; None: kept


@dataclass
class Provider:
    client: Client | None
    model: str
    platform: str
    arch: str
    lockfile: Lockfile | None = None
    cache: BlobCache | None = None
    runtime_toolchain: Toolchain | None = None
    retry_after_s: float = 60.0
    # Keys whose artifacts must be signed by one of these to load (kreg.signing); None: any.
    trusted: TrustedKeys | None = None
    # (key, artifact id, why) of every artifact refused, oldest first: its signature did not
    # hold, or a blob's bytes did not match their digest.
    refusals: list[tuple[KernelKey, str, str]] = field(default_factory=list)
    _entries: dict[KernelKey, _Entry] = field(default_factory=dict, repr=False)
    _key_locks: dict[KernelKey, threading.Lock] = field(default_factory=dict, repr=False)
    _decisions: dict[KernelKey | str, Decision] = field(default_factory=dict, repr=False)
    _warned: set[tuple[KernelKey | str, str]] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def key_for(self, spec: OperatorSpec) -> KernelKey:
        return KernelKey(self.platform, self.arch, self.model, spec)

    # ------------------------------------------------------------ calls

    def run(self, call: OpCall) -> Any:
        """Run `call` on the served kernel when there is one that can take it, else the reference."""
        outcome = self._plan(call)
        if isinstance(outcome, Decision):
            self._warn_once(outcome)
            self._record(call, outcome)
            return call.reference()
        entry, outputs, planned, decision = outcome
        assert entry.loaded is not None and decision.key is not None
        try:
            with _on_device(call.inputs):
                for p in planned:
                    entry.loaded.launch(p)
        except Exception as e:  # noqa: BLE001 - a JIT compile or launch failure: this key serves the reference
            why = f"launching its {decision.path} kernel failed: {type(e).__name__}: {e}"
            failed = Decision(decision.operator, "reference", why, decision.key, decision.artifact_id)
            with self._lock:
                self._entries[decision.key] = _Entry(entry.resolution, None, failed)
            self._warn_once(failed)
            self._record(call, failed)
            return call.reference()
        self._record(call, decision)
        if isinstance(call.output, tuple):
            return tuple(outputs[name] for name in call.output if name in outputs)
        return outputs[call.output]

    def explain(self, call: OpCall) -> Decision:
        """What `run(call)` would do, without launching (it does resolve and load)."""
        outcome = self._plan(call)
        return outcome if isinstance(outcome, Decision) else outcome[3]

    def _plan(self, call: OpCall) -> Decision | tuple[_Entry, dict[str, Any], list[Any], Decision]:
        if call.spec is None:
            return Decision(call.name, "reference", call.why_not)
        key = self.key_for(call.spec)
        operator = str(call.spec)
        where = _device_of(call.inputs)
        if isinstance(where, str):
            return Decision(operator, "reference", where, key)
        if where.type == "cpu" and not interpreting():
            return Decision(
                operator, "reference",
                "inputs are on the cpu; served kernels run on the GPU (or in Triton's interpreter, TRITON_INTERPRET=1)",
                key,
            )
        with _on_device(call.inputs):
            entry = self._entry(key)
            if entry.loaded is None:
                return entry.decision
            outputs, planned = entry.loaded.prepare(call.spec.params, call.inputs)
        fallbacks = [p.reason for p in planned if p.path == "source" and p.reason]
        decision = entry.decision
        if fallbacks:
            decision = Decision(operator, "source", f"binary cannot take this call ({fallbacks[0]}); JIT source", key,
                                decision.artifact_id)
        return entry, outputs, planned, decision

    def _record(self, call: OpCall, decision: Decision) -> None:
        with self._lock:
            self._decisions[call.name] = decision
            if decision.key is not None:
                self._decisions[decision.key] = decision

    def last_decision(self, target: KernelKey | OperatorSpec | str) -> Decision | None:
        """The decision of the last call for a key, a spec, or an op name ("jagged_sum")."""
        if isinstance(target, OperatorSpec):
            target = self.key_for(target)
        elif isinstance(target, str) and "/" in target:
            target = KernelKey.parse(target)
        elif isinstance(target, str) and "@" in target:
            target = self.key_for(OperatorSpec.parse(target))
        with self._lock:
            return self._decisions.get(target)

    def loaded(self, spec: OperatorSpec) -> LoadedOp | None:
        """The artifact loaded for `spec`'s key (None before it was resolved, or while the
        key runs the reference)."""
        with self._lock:
            entry = self._entries.get(self.key_for(spec))
        return entry.loaded if entry is not None else None

    def refresh(self) -> None:
        """Forget every resolution and loaded kernel: the next call of each key asks again."""
        with self._lock:
            self._entries.clear()

    def preload(self, operators: Sequence[OperatorSpec] | None = None, *, training: bool = False) -> list[Decision]:
        """Resolve `operators` (default: the model's profile, kreg.profiles, with the backward
        operators when `training`) in one manifest
        request, fetch their blobs in parallel, and load each served artifact now, so that a
        serving host's first calls fetch, load and compile nothing. Returns each key's
        standing, in order; keys already loaded are kept unless the manifest now serves
        another artifact (or none: retracted), which is then loaded (or dropped). Without a reachable registry each
        key falls back as a call would (the lockfile's pin, else the reference)."""
        from kreg.errors import KregError
        from kreg.ops.loaded import needed_blobs
        from kreg.profiles import profile

        specs = tuple(operators) if operators is not None else profile(self.model, training=training)
        keys = [self.key_for(spec) for spec in specs]
        answers = self._resolve_manifest(keys)
        # A key whose served artifact changed (retracted, replaced) since it was loaded is
        # loaded again: a manifest is how a long-running host learns of a retraction.
        with self._lock:
            for key, (resolution, transient) in answers.items():
                kept = self._entries.get(key)
                if kept is not None and not transient and _served(kept.resolution) != _served(resolution):
                    del self._entries[key]
        fetched: dict[Digest, bytes] = {}
        if self.client is not None:
            artifacts = [r.artifact for r, _ in answers.values() if r.artifact is not None]
            try:
                fetched = self.client.fetch_blobs([d for a in artifacts for d in needed_blobs(a, self.runtime_toolchain)])
            except KregError:
                pass  # each key's own load fetches again and records why it failed

        def fetch(digest: Digest) -> bytes:
            return fetched[digest] if digest in fetched else self._fetch(digest)

        return [self._entry(key, answers.get(key), fetch).decision for key in keys]

    # ------------------------------------------------------------ resolution and loading

    def _entry(
        self, key: KernelKey, resolved: tuple[Resolution, bool] | None = None, fetch: Callable[[Digest], bytes] | None = None
    ) -> _Entry:
        """The key's kept entry, else resolved (by `resolved` when given) and loaded, its blobs
        from `fetch` (default: the client, else the node cache)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.expires_at is None or time.monotonic() < entry.expires_at):
                return entry
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and (entry.expires_at is None or time.monotonic() < entry.expires_at):
                    return entry
            entry = self._load(key, resolved or self._resolve(key), fetch or self._fetch)
            with self._lock:
                self._entries[key] = entry
        if entry.loaded is not None:
            log.info("%s", entry.decision)
        return entry

    def _load(self, key: KernelKey, resolved: tuple[Resolution, bool], fetch: Callable[[Digest], bytes]) -> _Entry:
        resolution, transient = resolved
        retry_at = time.monotonic() + self.retry_after_s if transient else None
        if resolution.kind is ResolutionKind.REFERENCE or resolution.artifact is None:
            return _Entry(resolution, None, Decision(str(key.operator), "reference", resolution.reason, key), retry_at)
        entry, refused = self._load_artifact(key, resolution, fetch, retry_at)
        if not refused:
            return entry
        # Refused (untrusted, or a blob that is not what its digest says): the next resolution
        # is the lockfile's pin, when it names another artifact.
        pinned = self.lockfile.lookup(key) if self.lockfile is not None else None
        if pinned is None or pinned.artifact is None or pinned.artifact.artifact_id == resolution.artifact.artifact_id:
            return entry
        return self._load_artifact(key, pinned, fetch, retry_at)[0]

    def _load_artifact(
        self, key: KernelKey, resolution: Resolution, fetch: Callable[[Digest], bytes], retry_at: float | None
    ) -> tuple[_Entry, bool]:
        """The key's entry for `resolution`'s artifact, and whether the artifact was refused."""
        from kreg.errors import DataLoss, DeadlineExceeded, KregError, Unavailable
        from kreg.loader import LoadError, SourceError
        from kreg.ops.loaded import load_artifact

        operator, artifact = str(key.operator), resolution.artifact
        assert artifact is not None

        def reference(why: str, retry: float | None = retry_at) -> _Entry:
            return _Entry(resolution, None, Decision(operator, "reference", why, key, artifact.artifact_id), retry)

        refused = self._refused(key, artifact)
        if refused is not None:
            return reference(f"artifact {artifact.artifact_id[:12]} refused: {refused}"), True
        try:
            loaded = load_artifact(artifact, fetch, self.runtime_toolchain)
        except (LoadError, SourceError) as e:
            return reference(f"{resolution.kind.name.lower()} artifact {artifact.artifact_id[:12]} did not load: {e}"), False
        except KregError as e:
            why = f"fetching artifact {artifact.artifact_id[:12]} failed: {type(e).__name__}: {e}"
            if isinstance(e, DataLoss):  # bytes that do not match their digest: a tampered or corrupt blob
                self._refuse(key, artifact.artifact_id, str(e))
                return reference(why), True
            again = isinstance(e, (Unavailable, DeadlineExceeded))
            return reference(why, time.monotonic() + self.retry_after_s if again else retry_at), False
        return _Entry(resolution, loaded, Decision(operator, loaded.path, resolution.reason, key, artifact.artifact_id), retry_at), False

    def _resolve(self, key: KernelKey) -> tuple[Resolution, bool]:
        """(resolution, transient): the registry's answer, else the lockfile's pin, else a
        reference directive; transient when it should be asked again later."""
        from kreg.errors import KregError

        unreachable = "no registry client"
        if self.client is not None:
            try:
                return self.client.get_kernel(key), False
            except KregError as e:
                unreachable = f"registry unreachable ({type(e).__name__}: {e})"
        return self._without_registry(key, unreachable)

    def _resolve_manifest(self, keys: Sequence[KernelKey]) -> dict[KernelKey, tuple[Resolution, bool]]:
        """_resolve for many keys of this host kind in one GetManifest."""
        from kreg.errors import KregError

        unreachable = "no registry client"
        if self.client is not None:
            try:
                resolutions = self.client.get_manifest(self.platform, self.arch, self.model, [k.operator for k in keys])
                return {r.key: (r, False) for r in resolutions}
            except KregError as e:
                unreachable = f"registry unreachable ({type(e).__name__}: {e})"
        return {key: self._without_registry(key, unreachable) for key in keys}

    def _refused(self, key: KernelKey, artifact: Any) -> str | None:
        """Why `artifact` must not load here (None: it may), counted and logged when refused."""
        if self.trusted is None:
            return None
        from kreg.signing import UntrustedArtifact

        try:
            self.trusted.verify(artifact)
        except UntrustedArtifact as e:
            self._refuse(key, artifact.artifact_id, str(e))
            return str(e)
        return None

    def _refuse(self, key: KernelKey, artifact_id: str, why: str) -> None:
        with self._lock:
            self.refusals.append((key, artifact_id, why))
        log.warning("%s: refused artifact %s: %s", key, artifact_id[:12], why)

    def _without_registry(self, key: KernelKey, unreachable: str) -> tuple[Resolution, bool]:
        if self.lockfile is not None:
            pinned = self.lockfile.lookup(key)
            if pinned is not None:
                return pinned, False
            return Resolution(key, ResolutionKind.REFERENCE, f"{unreachable}; key not in the lockfile"), self.client is not None
        return Resolution(key, ResolutionKind.REFERENCE, f"{unreachable} and no lockfile"), self.client is not None

    def _fetch(self, digest: Digest) -> bytes:
        from kreg.loader import LoadError

        if self.client is not None:
            return self.client.fetch_blob(digest)
        if self.cache is not None:
            data = self.cache.get(digest)
            if data is not None:
                return data
            raise LoadError(f"blob {digest.sha256[:12]} is not in the node cache and there is no registry client")
        raise LoadError(f"blob {digest.sha256[:12]}: no registry client and no node cache")

    def _warn_once(self, decision: Decision) -> None:
        """One warning per key (or op name) and reason: a serving loop calls each op often."""
        token = (decision.key or decision.operator, decision.reason)
        with self._lock:
            if token in self._warned:
                return
            self._warned.add(token)
        log.warning("%s runs the reference: %s", token[0], decision.reason)


def _served(resolution: Resolution | None) -> tuple[object, ...]:
    """What a resolution serves: a retraction keeps the artifact (to explain) but changes this."""
    if resolution is None:
        return ()
    artifact = resolution.artifact
    return (resolution.kind, artifact.artifact_id if artifact else "", artifact.state if artifact else None)


def _tensors(inputs: Mapping[str, Any]) -> list[Any]:
    return [v for v in inputs.values() if hasattr(v, "device") and hasattr(v, "data_ptr")]


def _device_of(inputs: Mapping[str, Any]) -> Any:
    """The one device of the call's tensors, or why there is none."""
    devices = {t.device for t in _tensors(inputs)}
    if len(devices) != 1:
        return f"inputs on {len(devices)} devices ({', '.join(sorted(map(str, devices)))})"
    return devices.pop()


@contextlib.contextmanager
def _on_device(inputs: Mapping[str, Any]) -> Iterator[None]:
    """Make the inputs' GPU current: binaries load on, and kernels launch to, the current device."""
    tensors = _tensors(inputs)
    if not tensors or tensors[0].device.type != "cuda":
        yield
        return
    import torch

    with torch.cuda.device(tensors[0].device):
        yield


def open_lockfile(path: Path | str | None) -> Lockfile | None:
    """The lockfile at `path` when it exists (a malformed one raises InvalidArgument)."""
    if path is None or not Path(path).exists():
        return None
    from kreg.lockfile import Lockfile

    return Lockfile.load(path)
