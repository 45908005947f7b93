"""jagged_to_padded_dense@1 and dense_to_jagged@1 (OPERATORS.md row 5, one test file for the
pair): interpreted kernel runs in test_operators_interpreter's spawned pool against the
reference (random inputs and every edge case, int32 and int64 offsets), a round trip, the
references against a naive loop, cross-compilation of the default config, and kreg.ops."""

from __future__ import annotations

from multiprocessing.pool import Pool

import kreg.ops
import pytest
import torch
from kreg.model import CandidateStatus
from kreg.ops import reference as ref
from test_operators_interpreter import (  # noqa: F401  (interpreter_pool is a fixture)
    fields,
    interpreted_check,
    interpreted_run,
    interpreter_pool,
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS

NAMES = ("jagged_to_padded_dense", "dense_to_jagged")
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24"}]
RANDOM_DIMS = {"B": 6, "D": 40, "len_max": 30, "N": 17}


def check_cases() -> list[object]:
    out = []
    for name in NAMES:
        for params in PARAMS:
            for index, config in enumerate(spread(OPERATORS[name].config_space(params))):
                label = f"{name}-{','.join(f'{k}={v}' for k, v in params.items()) or 'default'}-cfg{index}"
                out.append(pytest.param(name, params, fields(config), id=label))
    return out


@pytest.mark.parametrize("name, params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, name: str, params: dict[str, str], config: object) -> None:
    template = OPERATORS[name]
    dims = {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}
    tasks = [(name, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(name, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(name: str) -> bool:
    template = OPERATORS[name]
    config = fields(template.config_space({})[-1])
    inputs = template.make_inputs({}, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(name, {}, config, inputs)
    second, _ = interpreted_run(name, {}, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def interpreted_round_trip() -> bool:
    """jagged -> padded (N past every row) -> jagged gives the values back, bit for bit."""
    pad, back = OPERATORS["jagged_to_padded_dense"], OPERATORS["dense_to_jagged"]
    inputs = pad.make_inputs({"dtype": "bf16"}, {"B": 5, "D": 24, "len_max": 19, "N": 20}, 2, "cpu")
    dense, _ = interpreted_run("jagged_to_padded_dense", {"dtype": "bf16"}, fields(pad.config_space({})[0]), inputs)
    jagged_inputs = {"dense": dense["out"], "offsets": inputs["offsets"], "L": inputs["values"].shape[0]}
    values, _ = interpreted_run("dense_to_jagged", {"dtype": "bf16"}, fields(back.config_space({})[-1]), jagged_inputs)
    return bool(torch.equal(values["out"], inputs["values"]))


@pytest.mark.parametrize("name", NAMES)
def test_identical_across_runs(interpreter_pool: Pool, name: str) -> None:
    assert interpreter_pool.apply(interpreted_twice, (name,))


def test_round_trip(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_round_trip)


@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_references_match_a_naive_loop(index: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [0, 3, 7, 0, 1, 12]
    starts = [0]
    for n in lengths:
        starts.append(starts[-1] + n)
    values = torch.randn(starts[-1], 3, generator=gen)
    offsets = torch.tensor(starts, dtype=index)
    for max_len in (0, 1, 5, 12, 20):
        want = torch.full((len(lengths), max_len, 3), -2.5)
        for b, n in enumerate(lengths):
            for i in range(min(n, max_len)):
                want[b, i] = values[starts[b] + i]
        assert torch.equal(ref.jagged_to_padded_dense(values, offsets, max_len=max_len, padding_value=-2.5), want)
        dense = torch.randn(len(lengths), max_len, 3, generator=gen)
        back = torch.zeros_like(values)
        for b, n in enumerate(lengths):
            for i in range(min(n, max_len)):
                back[starts[b] + i] = dense[b, i]
        assert torch.equal(ref.dense_to_jagged(dense, offsets), back)
        assert torch.equal(ref.dense_to_jagged(dense, offsets, total_L=starts[-1]), back)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("name", NAMES)
def test_default_config_cross_compiles(name: str, arch: str) -> None:
    record = RECORDS[arch]
    params = {"D": "512", "dtype": "bf16"}
    config = OPERATORS[name].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{name}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(1)
    values, offsets = torch.randn(20, 6, generator=gen), torch.tensor([0, 4, 4, 15, 20])
    padded = kreg.ops.jagged_to_padded_dense(values, offsets, max_len=7, padding_value=1.5)
    assert torch.equal(padded, ref.jagged_to_padded_dense(values, offsets, max_len=7, padding_value=1.5))
    assert torch.equal(kreg.ops.dense_to_jagged(padded, offsets), ref.dense_to_jagged(padded, offsets))
    assert str(kreg.ops.explain("jagged_to_padded_dense", values.bfloat16(), offsets.int(), max_len=7).operator) == (
        "jagged_to_padded_dense@1{D=6,dtype=bf16,index_dtype=int32}"
    )
    assert str(kreg.ops.explain("dense_to_jagged", padded, offsets, total_L=20).operator) == "dense_to_jagged@1{D=6,dtype=fp32}"
