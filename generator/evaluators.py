"""The worker's evaluator children, and how a candidate is routed through them.

With the target GPU, one child compiles, verifies and times (Triton in compiled mode).
Without it, Triton's one-mode-per-process rule needs two: a compiling child builds the
binaries for the target and an interpreting child (TRITON_INTERPRET=1) verifies the same
source on CPU tensors. A timeout, a crash or an exception becomes the candidate's status.
"""

from __future__ import annotations

from dataclasses import replace

from generator.evaluate import CandidateReport, CandidateTask, DeviceInfo, PeerTask, PeerTiming, ProbeTask
from generator.isolation import ChildFailure, IsolatedRunner
from kreg.model import CandidateStatus

HANDLER = "generator.evaluate:handle"
_STATUS = {"timeout": CandidateStatus.TIMEOUT, "crash": CandidateStatus.CRASH, "error": CandidateStatus.CRASH}


def _failed(failure: ChildFailure) -> CandidateReport:
    return CandidateReport(_STATUS[failure.kind], f"{failure.kind}: {failure.message}"[:2000])


class Evaluators:
    def __init__(self, *, use_device: bool = True, probe_timeout_s: float = 120.0) -> None:
        self._compiled = IsolatedRunner(HANDLER, {"TRITON_INTERPRET": "0"})
        self._interpreted: IsolatedRunner | None = None
        self.device: DeviceInfo | None = None
        if use_device:
            probed = self._compiled.run(ProbeTask(), probe_timeout_s)
            self.device = probed if isinstance(probed, DeviceInfo) else None

    def _interpreter(self) -> IsolatedRunner:
        if self._interpreted is None:
            self._interpreted = IsolatedRunner(HANDLER, {"TRITON_INTERPRET": "1"})
        return self._interpreted

    def evaluate(self, task: CandidateTask, timeout_s: float) -> CandidateReport:
        if task.on_device:
            result = self._compiled.run(replace(task, stage="full"), timeout_s)
            if isinstance(result, ChildFailure):
                self._compiled.restart()  # a CUDA error may have poisoned the context
                return _failed(result)
            return result
        built = self._compiled.run(replace(task, stage="build"), timeout_s)
        if isinstance(built, ChildFailure):
            return _failed(built)
        if built.status is not CandidateStatus.PASSED:
            return built
        checked = self._interpreter().run(replace(task, stage="verify"), timeout_s)
        if isinstance(checked, ChildFailure):
            return replace(_failed(checked), kernels=built.kernels)
        return replace(checked, kernels=built.kernels)

    def time_peers(self, task: PeerTask, timeout_s: float = 600.0) -> tuple[PeerTiming, ...]:
        result = self._compiled.run(task, timeout_s)
        if isinstance(result, ChildFailure):
            raise RuntimeError(f"timing the PyTorch peers failed: {result.message}")
        return result

    def close(self) -> None:
        self._compiled.close()
        if self._interpreted is not None:
            self._interpreted.close()

    def __enter__(self) -> "Evaluators":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
