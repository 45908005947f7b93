"""jagged_flash_attention@1: interpreted kernel runs in test_operators_interpreter's spawned
pool against the reference (random inputs and every edge case, int32 and int64 offsets), the
reference against a naive loop, the launches against the kernel's signature,
cross-compilation of the default config, and kreg.ops."""

from __future__ import annotations

import inspect
import math
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
from generator.operators.base import compare, load_kernel_module

NAME = "jagged_flash_attention"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24"}]
RANDOM_DIMS = {"B": 4, "D": 32, "len_max": 40, "N": 24}


def check_cases() -> list[object]:
    return config_cases(NAME, PARAMS)


@pytest.mark.parametrize("params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    dims = {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}
    tasks = [(NAME, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[len(template.config_space(params)) // 2])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def interpreted_lengths(lengths: list[int], max_len: int) -> tuple[list[int], bool, bool]:
    """(row lengths, whether kernel == reference, whether items past max_len are 0) for a
    hand-written pattern, int32 offsets, bf16."""
    from generator.operators.jagged_flash_attention import inputs_from_lengths

    params = {"index_dtype": "int32", "dtype": "bf16"}
    template = OPERATORS[NAME]
    inputs = inputs_from_lengths(params, lengths, 16, max_len, seed=5, device="cpu")
    outputs, expected = interpreted_run(NAME, params, fields(template.config_space(params)[0]), inputs)
    ok = compare(outputs["out"], expected["out"], *template.tolerance(expected["out"].dtype)).ok
    offsets = inputs["offsets"].tolist()
    tails = [outputs["out"][offsets[b] + max_len : offsets[b + 1]] for b in range(len(lengths))]
    return inputs["offsets"].diff().tolist(), ok, all(bool((t == 0).all()) for t in tails)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def test_explicit_length_pattern(interpreter_pool: Pool) -> None:
    lengths = [0, 9, 0, 33, 2, 0, 17]
    built, ok, zero_tails = interpreter_pool.apply(interpreted_lengths, (lengths, 16))
    assert built == lengths and ok and zero_tails


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: list[int], max_len: int) -> torch.Tensor:
    out = torch.zeros_like(v, dtype=torch.float64)
    for b in range(len(offsets) - 1):
        start = offsets[b]
        n = min(offsets[b + 1] - start, max_len)
        for i in range(n):
            scores = [float(q[start + i].double() @ k[start + j].double()) for j in range(n)]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            for j in range(n):
                out[start + i] += weights[j] / total / max_len * v[start + j].double()
    return out


@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_reference_matches_a_naive_loop(index: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [0, 3, 7, 0, 1, 9, 5]
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    q, k, v = (torch.randn(offsets[-1], 4, generator=gen, dtype=torch.float64) for _ in range(3))
    for max_len in (1, 4, 5, 100):
        want = naive_attention(q, k, v, offsets, max_len)
        got = ref.jagged_flash_attention(q, k, v, torch.tensor(offsets, dtype=index), max_len=max_len)
        assert got.dtype == torch.float64
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    got32 = ref.jagged_flash_attention(q.float(), k.float(), v.float(), torch.tensor(offsets), max_len=4)
    assert got32.dtype == torch.float32 and torch.allclose(got32.double(), naive_attention(q, k, v, offsets, 4), atol=1e-5)
    with pytest.raises(ValueError):
        ref.jagged_flash_attention(q, k, v, torch.tensor(offsets), max_len=0)
    with pytest.raises(ValueError):
        ref.jagged_flash_attention(q, k[:, :2], v, torch.tensor(offsets), max_len=3)


def test_launches_fit_the_kernel() -> None:
    """12-60 configs for the production keys; each launch passes exactly the kernel's
    constexprs and runtime args."""
    template = OPERATORS[NAME]
    constexprs_of = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in ({}, {"D": "128", "dtype": "bf16"}, {"D": "64", "dtype": "fp16", "index_dtype": "int32"}):
        configs = template.config_space(params)
        assert 12 <= len(configs) <= 60 and len(set(configs)) == len(configs)
        dims = {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}
        inputs = template.make_inputs(params, dims, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        for config in spread(configs):
            for launch in template.launches(params, config, inputs, outputs):
                constexprs = constexprs_of[launch.entry_point]
                assert set(config.constexprs) | set(launch.constexprs) == constexprs
                assert not set(config.constexprs) & set(launch.constexprs)
                signature = inspect.signature(getattr(module, launch.entry_point).fn).parameters
                assert len(launch.args) == len(signature) - len(constexprs)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
def test_default_config_cross_compiles(arch: str) -> None:
    record = RECORDS[arch]
    params = {"D": "128", "dtype": "bf16"}
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert {k.entry_point for k in report.kernels} == {"jagged_flash_attention_kernel"}
    assert all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(20, 8, generator=gen) for _ in range(3))
    offsets = torch.tensor([0, 4, 4, 15, 20])
    got = kreg.ops.jagged_flash_attention(q, k, v, offsets, max_len=6)
    assert torch.equal(got, ref.jagged_flash_attention(q, k, v, offsets, max_len=6))
    assert str(kreg.ops.explain(NAME, q.bfloat16(), k.bfloat16(), v.bfloat16(), offsets, max_len=6).operator) == (
        "jagged_flash_attention@1{D=8,dtype=bf16}"
    )
    assert str(kreg.ops.explain(NAME, q, k, v, offsets.int(), max_len=6).operator) == (
        "jagged_flash_attention@1{D=8,dtype=fp32,index_dtype=int32}"
    )
    decision = kreg.ops.explain(NAME, q, k, v, offsets, max_len=0)
    assert decision.path == "reference"
