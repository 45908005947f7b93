"""batched_dense_bucketize@1: interpreted kernel runs in test_operators_interpreter's spawned
pool against the reference, the reference against a naive loop, the template contract,
cross-compilation of the default config, kreg.ops."""

from __future__ import annotations

import bisect
from multiprocessing.pool import Pool

import kreg.ops
import pytest
import torch
from kreg.model import CandidateStatus
from kreg.ops import reference as ref
from test_operators_interpreter import (  # noqa: F401  (interpreter_pool is a fixture)
    config_cases,
    fields,
    interpreted_check,
    interpreted_run,
    interpreter_pool,
    kernel_constexprs,
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS
from generator.operators.base import load_kernel_module

NAME = "batched_dense_bucketize"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "F": "13"}]
RANDOM_DIMS = {"B": 40, "F": 13, "n_min": 0, "n_max": 70}


def check_cases() -> list[object]:
    """The spread of each param set's configs, which lands on binary search (PROBES 1), plus
    the first and last 8-probe configs of each."""
    cases = config_cases(NAME, PARAMS)
    for params in PARAMS:
        probing = [c for c in OPERATORS[NAME].config_space(params) if c.constexprs["PROBES"] > 1]
        label = ",".join(f"{k}={v}" for k, v in params.items()) or "default"
        cases += [pytest.param(params, fields(c), id=f"{label}-probes{i}") for i, c in enumerate((probing[0], probing[-1]))]
    return cases


@pytest.mark.parametrize("params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    dims = {**RANDOM_DIMS, **({"F": int(params["F"])} if "F" in params else {})}
    tasks = [(NAME, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice() -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space({})[-1])
    inputs = template.make_inputs({}, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, {}, config, inputs)
    second, _ = interpreted_run(NAME, {}, config, inputs)
    return torch.equal(first["out"], second["out"])


def interpreted_special_values() -> bool:
    """NaN, ±inf, values on borders, and a feature without borders, in the interpreter, by
    binary search and by 8-probe rounds."""
    template = OPERATORS[NAME]
    inputs = {
        "x": torch.tensor([[float("nan"), 1.0, 3.0], [float("inf"), -float("inf"), 2.0], [1.0, 2.5, -1.0]]),
        "border_values": torch.tensor([1.0, 2.0, 2.0, 3.0, 2.0, 2.5]),
        "border_offsets": torch.tensor([0, 4, 6, 6]),
    }
    configs = template.config_space({})
    probing = next(c for c in configs if c.constexprs["PROBES"] > 1)
    runs = [interpreted_run(NAME, {}, fields(c), inputs) for c in (configs[0], probing)]
    return all(torch.equal(out["out"], expected["out"]) for out, expected in runs)


def test_identical_across_runs_and_special_values(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice)
    assert interpreter_pool.apply(interpreted_special_values)


def test_reference_matches_a_naive_loop_and_torch_bucketize() -> None:
    gen = torch.Generator().manual_seed(2)
    counts = [3, 0, 5, 1, 8]
    borders = [sorted(torch.randint(-4, 5, (n,), generator=gen).float().tolist()) for n in counts]
    values = torch.tensor([v for b in borders for v in b])
    offsets = torch.tensor([0] + [sum(counts[: i + 1]) for i in range(len(counts))])
    x = torch.randint(-6, 7, (7, len(counts)), generator=gen).float() / 1.5
    x[0, 0], x[1, 2] = float("nan"), float("inf")
    got = ref.batched_dense_bucketize(x, values, offsets)
    for b in range(x.shape[0]):
        for f in range(len(counts)):
            v = x[b, f].item()
            expected = len(borders[f]) if v != v else bisect.bisect_left(borders[f], v)
            assert got[b, f].item() == expected, (b, f)
    for f in range(len(counts)):
        assert torch.equal(got[:, f], torch.bucketize(x[:, f].contiguous(), torch.tensor(borders[f]), right=False))
    assert got.dtype == torch.int64


def test_launches_fit_the_kernel() -> None:
    template = OPERATORS[NAME]
    entry_points = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in PARAMS + [{"F": "1000", "dtype": "fp32"}]:
        configs = template.config_space(params)
        assert 12 <= len(configs) <= 60 and len(set(configs)) == len(configs), (params, len(configs))
        dims = {**RANDOM_DIMS, **({"F": int(params["F"])} if "F" in params else {})}
        inputs = template.make_inputs(params, dims, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        for launch in template.launches(params, configs[0], inputs, outputs):
            constexprs = entry_points[launch.entry_point]
            assert set(configs[0].constexprs) | set(launch.constexprs) == constexprs
            assert len(launch.args) == len(getattr(module, launch.entry_point).arg_names) - len(constexprs)
    with pytest.raises(ValueError, match="want one of"):
        template.config_space({"dtype": "fp8"})


CROSS = [(arch, {"F": "13", "dtype": "fp32"}) for arch in ("sm_80", "sm_90", "sm_100", "gfx90a", "gfx942")]
CROSS += [(arch, {"dtype": "bf16", "index_dtype": "int32"}) for arch in ("sm_90", "gfx942")]


@pytest.mark.parametrize("arch, params", CROSS)
def test_default_config_cross_compiles(arch: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=gen)
    values = torch.tensor([-1.0, 0.0, 1.0, 0.5, -0.5, 0.0, 2.0])
    offsets = torch.tensor([0, 3, 4, 7], dtype=torch.int32)
    assert torch.equal(kreg.ops.batched_dense_bucketize(x, values, offsets), ref.batched_dense_bucketize(x, values, offsets))
    decision = kreg.ops.explain("batched_dense_bucketize", x, values, offsets)
    assert str(decision.operator) == "batched_dense_bucketize@1{F=3,dtype=fp32,index_dtype=int32}"
