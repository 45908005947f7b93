"""hstu_attention@1 (forward): interpreted kernel runs in test_operators_interpreter's spawned
pool against the reference (random inputs with and without targets and every edge case, int32
and int64 offsets), the reference against a naive loop over generative-recommenders' mask,
the launches against the kernel's signature, cross-compilation of the default config, and
kreg.ops."""

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
from generator.operators.base import load_kernel_module

NAME = "hstu_attention"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24", "H": "2"}]
RANDOM_DIMS = {"B": 3, "H": 2, "D": 32, "len_max": 30, "N": 20, "targets": 5}


def check_cases() -> list[object]:
    return config_cases(NAME, PARAMS)


def with_key(params: dict[str, str], dims: dict[str, int]) -> dict[str, int]:
    return {**dims, **{k: int(v) for k, v in params.items() if k in ("D", "H")}}


@pytest.mark.parametrize("params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    tasks = [(NAME, params, config, with_key(params, RANDOM_DIMS), seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, with_key(params, {**RANDOM_DIMS, "targets": 0}), 2)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:3])


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[len(template.config_space(params)) // 2])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def naive_hstu(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: list[int], max_len: int, targets: list[int] | None
) -> torch.Tensor:
    """generative-recommenders' mask written out: query i sees key j iff i == j or
    min(i, len - t) > min(j, len - t); silu(alpha s) / N, no softmax."""
    out = torch.zeros_like(v, dtype=torch.float64)
    alpha = 1.0 / math.sqrt(q.shape[2])
    for b in range(len(offsets) - 1):
        start, length = offsets[b], offsets[b + 1] - offsets[b]
        n = min(length, max_len)
        max_id = length - (targets[b] if targets is not None else 0)
        for h in range(q.shape[1]):
            for i in range(n):
                for j in range(n):
                    if not (i == j or min(i, max_id) > min(j, max_id)):
                        continue
                    s = alpha * float(q[start + i, h].double() @ k[start + j, h].double())
                    a = s / (1.0 + math.exp(-s)) / max_len
                    out[start + i, h] += a * v[start + j, h].double()
    return out


@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_reference_matches_a_naive_loop(index: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [0, 3, 7, 0, 1, 9, 5]
    targets = [1, 2, 3, 0, 2, 4, 0]
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    q, k, v = (torch.randn(offsets[-1], 2, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    offs = torch.tensor(offsets, dtype=index)
    for max_len in (1, 4, 9, 100):
        for t in (None, targets):
            want = naive_hstu(q, k, v, offsets, max_len, t)
            nt = torch.tensor(t) if t is not None else None
            got = ref.hstu_attention(q, k, v, offs, max_len=max_len, num_targets=nt)
            assert got.dtype == torch.float64
            assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), (max_len, t)
    zeros = torch.zeros(len(lengths), dtype=torch.int64)
    assert torch.equal(ref.hstu_attention(q, k, v, offs, max_len=9), ref.hstu_attention(q, k, v, offs, max_len=9, num_targets=zeros))
    scaled = ref.hstu_attention(q, k, v, offs, max_len=9, alpha=0.25)
    assert not torch.allclose(scaled, ref.hstu_attention(q, k, v, offs, max_len=9))
    with pytest.raises(ValueError):
        ref.hstu_attention(q, k, v, offs, max_len=0)


def test_launches_fit_the_kernel() -> None:
    template = OPERATORS[NAME]
    constexprs_of = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in ({}, {"D": "128", "H": "4", "dtype": "bf16"}, {"D": "64", "dtype": "fp16", "index_dtype": "int32"}):
        configs = template.config_space(params)
        assert 12 <= len(configs) <= 60 and len(set(configs)) == len(configs)
        inputs = template.make_inputs(params, with_key(params, RANDOM_DIMS), 0, "cpu")
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
    params = {"D": "128", "H": "4", "dtype": "bf16"}
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert {k.entry_point for k in report.kernels} == {"hstu_attention_kernel"}
    assert all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(20, 2, 8, generator=gen) for _ in range(3))
    offsets = torch.tensor([0, 4, 4, 15, 20])
    targets = torch.tensor([1, 0, 3, 2])
    got = kreg.ops.hstu_attention(q, k, v, offsets, max_len=12, num_targets=targets)
    assert torch.equal(got, ref.hstu_attention(q, k, v, offsets, max_len=12, num_targets=targets))
    assert torch.equal(kreg.ops.hstu_attention(q, k, v, offsets, max_len=12), ref.hstu_attention(q, k, v, offsets, max_len=12))
    named = kreg.ops.explain(NAME, q.bfloat16(), k.bfloat16(), v.bfloat16(), offsets, max_len=12, num_targets=targets)
    assert str(named.operator) == "hstu_attention@1{D=8,H=2,dtype=bf16}"
    assert str(kreg.ops.explain(NAME, q, k, v, offsets.int(), max_len=12).operator) == (
        "hstu_attention@1{D=8,H=2,dtype=fp32,index_dtype=int32}"
    )
    assert kreg.ops.explain(NAME, q, k, v, offsets, max_len=12, num_targets=targets[:2]).path == "reference"
