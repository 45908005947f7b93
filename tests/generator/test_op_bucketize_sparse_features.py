"""bucketize_sparse_features@1: interpreted kernel runs (count, scan, scatter) in
test_operators_interpreter's spawned pool against the reference, the reference against a
naive loop, the template contract, cross-compilation of the default config, kreg.ops."""

from __future__ import annotations

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

NAME = "bucketize_sparse_features"
PARAMS = [
    {},
    {"block": "1", "positions": "1", "index_dtype": "int32"},
    {"dtype": "int64", "positions": "1"},
]
RANDOM_DIMS = {"T": 3, "B": 4, "len_max": 40, "S": 6, "id_max": 10_000}


def check_cases() -> list[object]:
    return config_cases(NAME, PARAMS)


@pytest.mark.parametrize("params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    tasks = [(NAME, params, config, RANDOM_DIMS, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"block": "1", "positions": "1"},))


def naive(offsets: list[int], ids: list[int], S: int, block_sizes: list[int] | None) -> tuple[list[int], ...]:
    rows = len(offsets) - 1
    lists = [[[] for _ in range(rows)] for _ in range(S)]  # [bucket][row] -> (new id, position)
    for r in range(rows):
        for position, i in enumerate(range(offsets[r], offsets[r + 1])):
            x = ids[i]
            if block_sizes is None:
                p, new = x % S, x // S
            else:
                blk = block_sizes[r // (rows // len(block_sizes))]
                p, new = (x // blk, x % blk) if x < blk * S else (x % S, x // S)
            lists[p][r].append((new, position))
    lengths = [len(lists[p][r]) for p in range(S) for r in range(rows)]
    new_offsets = [0]
    for n in lengths:
        new_offsets.append(new_offsets[-1] + n)
    flat = [pair for p in range(S) for r in range(rows) for pair in lists[p][r]]
    return lengths, new_offsets, [n for n, _ in flat], [q for _, q in flat]


@pytest.mark.parametrize("blocked", [False, True])
def test_reference_matches_a_naive_loop(blocked: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    lengths = torch.tensor([3, 0, 5, 1, 0, 7, 2, 4])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    ids = torch.randint(0, 60, (int(offsets[-1]),), generator=gen)
    block_sizes = torch.tensor([7, 0]) if blocked else None
    got = ref.bucketize_sparse_features(offsets.int(), ids, 5, block_sizes=block_sizes, positions=True)
    expected = naive(offsets.tolist(), ids.tolist(), 5, block_sizes.tolist() if blocked else None)
    assert [t.tolist() for t in got] == list(expected)
    assert got[0].dtype == torch.int32 and got[2].dtype == torch.int64


def test_launches_fit_the_kernels() -> None:
    """Each launch passes exactly its kernel's constexprs and runtime args; 12-60 configs."""
    template = OPERATORS[NAME]
    entry_points = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in PARAMS:
        configs = template.config_space(params)
        assert 12 <= len(configs) <= 60 and len(set(configs)) == len(configs)
        inputs = template.make_inputs(params, RANDOM_DIMS, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        for launch in template.launches(params, configs[0], inputs, outputs):
            constexprs = entry_points[launch.entry_point]
            assert set(configs[0].constexprs) | set(launch.constexprs) == constexprs
            arg_names = getattr(module, launch.entry_point).arg_names
            assert len(launch.args) == len(arg_names) - len(constexprs)
    with pytest.raises(ValueError, match="want one of"):
        template.config_space({"block": "2"})


CROSS = [(arch, {"dtype": "int64"}) for arch in ("sm_80", "sm_90", "sm_100", "gfx90a", "gfx942")]
CROSS += [(arch, {"block": "1", "positions": "1", "index_dtype": "int32"}) for arch in ("sm_90", "gfx942")]


@pytest.mark.parametrize("arch, params", CROSS)
def test_default_config_cross_compiles(arch: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert len(report.kernels) == 5 and all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    offsets = torch.tensor([0, 3, 3, 8, 9], dtype=torch.int32)
    ids = torch.tensor([5, 2, 7, 4, 9, 11, 30, 1, 8])
    for kwargs in ({}, {"positions": True}, {"block_sizes": torch.tensor([4, 2])}):
        got = kreg.ops.bucketize_sparse_features(offsets, ids, 3, **kwargs)
        expected = ref.bucketize_sparse_features(offsets, ids, 3, **kwargs)
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    decision = kreg.ops.explain("bucketize_sparse_features", offsets, ids, 3, block_sizes=torch.tensor([4, 2]), positions=True)
    assert str(decision.operator) == "bucketize_sparse_features@1{block=1,dtype=int64,index_dtype=int32,positions=1}"
