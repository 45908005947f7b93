"""Packaging a winner: evidence tier, verdict against the reference, measurements; and the
search neighbourhood over a template's configs."""

from __future__ import annotations

from generator.evaluate import CandidateReport, DeviceInfo, PeerTiming, ShapeTiming
from generator.hardware import record_for
from generator.operators import OPERATORS
from generator.operators.base import Config
from generator.pipeline import REVERIFY_SEEDS, GenerationSettings, _neighbors, generate, package
from generator.search import SearchBudget
from kreg.keys import KernelKey
from kreg.model import CandidateStatus, EvidenceTier, Job, JobState, Provenance, TuningShape, Verdict

KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=fp32}")
SHAPES = (TuningShape({"B": 2048, "D": 128, "len_min": 0, "len_max": 100}), TuningShape({"B": 8192, "D": 128, "len_min": 0, "len_max": 40}))
H100 = DeviceInfo("nvidia", "sm_90", "NVIDIA H100 80GB HBM3", 3.0e12)
CONFIG = Config({"BLOCK_D": 128, "BLOCK_L": 16}, 4, 1)


def _package(kernel_ms: float, device: DeviceInfo | None = H100):  # type: ignore[no-untyped-def]
    report = CandidateReport(
        CandidateStatus.PASSED, "", 1e-6, (), tuple(ShapeTiming(dict(s.dims), kernel_ms, kernel_ms * 0.9, kernel_ms * 1.1) for s in SHAPES)
    )
    peers = tuple(PeerTiming(dict(s.dims), 0.1, 0.05) for s in SHAPES) if device else ()
    job = Job("j1", KEY, JobState.LEASED, tuning_shapes=SHAPES)
    return package(job, OPERATORS["jagged_sum"], record_for("nvidia", "sm_90"), CONFIG, report, peers, SHAPES, device, Provenance(), source=OPERATORS["jagged_sum"].kernel_source)[0]


def test_a_kernel_faster_than_eager_is_served_with_its_measurements() -> None:
    artifact = _package(0.02)
    assert artifact.tier is EvidenceTier.TUNED and artifact.verdict is Verdict.USE_KERNEL
    m = artifact.measurements
    assert [s.median_ms for s in m.shapes] == [0.02, 0.02]
    assert abs(m.speedup_vs_eager - 5.0) < 1e-9 and abs(m.speedup_vs_compile - 2.5) < 1e-9
    expected_bytes = OPERATORS["jagged_sum"].bytes_moved({"D": "128", "dtype": "fp32"}, SHAPES[0].dims)
    assert abs(m.shapes[0].bandwidth_fraction - expected_bytes / 0.02e-3 / 3.0e12) < 1e-9


def test_a_kernel_slower_than_eager_prefers_the_reference() -> None:
    assert _package(0.2).verdict is Verdict.PREFER_REFERENCE


def test_without_the_device_the_tier_is_interpreted_and_nothing_is_timed() -> None:
    artifact = _package(0.02, device=None)
    assert artifact.tier is EvidenceTier.INTERPRETED and artifact.verdict is Verdict.USE_KERNEL
    assert artifact.measurements.shapes == () and artifact.measurements.median_ms is None


def test_neighbours_change_one_axis_by_one_step_within_the_space() -> None:
    space = OPERATORS["jagged_sum"].config_space({"D": "128", "dtype": "fp32"})
    neighbors = _neighbors(space)(space[0])
    assert neighbors and all(n in space for n in neighbors)
    for n in neighbors:
        changed = [k for k in n.constexprs if n.constexprs[k] != space[0].constexprs[k]]
        changed += [a for a in ("num_warps", "num_stages") if getattr(n, a) != getattr(space[0], a)]
        assert len(changed) == 1


class FakeEvaluators:
    """Stands in for the evaluator children: every config times at `kernel_ms`; re-verification
    (the fresh seeds) passes or fails as told."""

    def __init__(self, kernel_ms: float, reverify_passes: bool) -> None:
        self.device = H100
        self.kernel_ms, self.reverify_passes = kernel_ms, reverify_passes
        self.tasks: list[object] = []

    def evaluate(self, task, timeout_s):  # type: ignore[no-untyped-def]
        self.tasks.append(task)
        if task.seeds == REVERIFY_SEEDS and not self.reverify_passes:
            return CandidateReport(CandidateStatus.WRONG_RESULT, "output 'out': 12 elements wrong")
        return CandidateReport(CandidateStatus.PASSED, "", 1e-6, (), tuple(ShapeTiming(dict(s.dims), self.kernel_ms, 0, 0) for s in task.time_shapes))

    def time_peers(self, task):  # type: ignore[no-untyped-def]
        return tuple(PeerTiming(dict(s.dims), 0.1, 0.05) for s in task.shapes)


def _generate(evaluators: FakeEvaluators):  # type: ignore[no-untyped-def]
    job = Job("j1", KEY, JobState.LEASED, tuning_shapes=SHAPES)
    settings = GenerationSettings(tuned_budget=SearchBudget(max_candidates=3, draft=3))
    return generate(job, evaluators, settings, worker_id="w")  # type: ignore[arg-type]


def test_a_speedup_over_ten_times_eager_is_reverified_and_flagged() -> None:
    evaluators = FakeEvaluators(kernel_ms=0.005, reverify_passes=True)  # 20x
    generated = _generate(evaluators)
    assert generated.artifact is not None and "re-verified" in generated.summary
    assert any(getattr(t, "seeds", None) == REVERIFY_SEEDS for t in evaluators.tasks)
    assert "re-verified on fresh seeds" in generated.candidates[-1].reason


def test_a_winner_failing_reverification_fails_the_job() -> None:
    generated = _generate(FakeEvaluators(kernel_ms=0.005, reverify_passes=False))
    assert generated.artifact is None and "failed re-verification" in generated.summary


def test_an_ordinary_speedup_is_not_reverified() -> None:
    evaluators = FakeEvaluators(kernel_ms=0.05, reverify_passes=False)  # 2x
    generated = _generate(evaluators)
    assert generated.artifact is not None and generated.artifact.tier is EvidenceTier.TUNED
    assert all(getattr(t, "seeds", None) != REVERIFY_SEEDS for t in evaluators.tasks)


class ShapeDependentEvaluators(FakeEvaluators):
    """BLOCK_L 16 is the fastest over both shapes but slower than eager (0.1 ms) on the second;
    every other config is a little slower overall and faster than eager on both."""

    def evaluate(self, task, timeout_s):  # type: ignore[no-untyped-def]
        self.tasks.append(task)
        times = (0.01, 0.12) if task.config.constexprs["BLOCK_L"] == 16 else (0.08, 0.08)
        return CandidateReport(CandidateStatus.PASSED, "", 1e-6, (), tuple(ShapeTiming(dict(s.dims), t, 0, 0) for s, t in zip(task.time_shapes, times)))


def test_the_fastest_candidate_not_slower_than_eager_on_any_shape_wins() -> None:
    evaluators = ShapeDependentEvaluators(kernel_ms=0.0, reverify_passes=True)
    job = Job("j1", KEY, JobState.LEASED, tuning_shapes=SHAPES)
    settings = GenerationSettings(tuned_budget=SearchBudget(max_candidates=12, draft=12))
    generated = generate(job, evaluators, settings, worker_id="w")  # type: ignore[arg-type]
    tried = {t.config.constexprs["BLOCK_L"] for t in evaluators.tasks}
    assert 16 in tried and len(tried) > 1  # the draft timed the fast-but-losing config and others
    artifact = generated.artifact
    assert artifact is not None  # the measurements are the winner's: (0.08, 0.08), not (0.01, 0.12)
    assert [s.median_ms for s in artifact.measurements.shapes] == [0.08, 0.08]
    assert artifact.verdict is Verdict.USE_KERNEL
