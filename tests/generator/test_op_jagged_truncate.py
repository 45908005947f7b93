"""jagged_truncate@1: interpreted kernel runs in test_operators_interpreter's spawned pool
against the reference (random inputs and every edge case, int32 and int64 offsets, keep
first and last), the reference against a naive loop, cross-compilation of the default
config, and kreg.ops."""

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
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS
from generator.operators.base import compare

NAME = "jagged_truncate"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32", "keep": "last"}, {"dtype": "fp16", "D": "24", "keep": "last"}]
RANDOM_DIMS = {"B": 6, "D": 40, "len_max": 30, "N": 17}


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
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def interpreted_lengths(lengths: list[int], max_len: int, keep: str) -> tuple[list[int], bool]:
    """(kept lengths, whether kernel == reference) for a hand-written pattern, int32 offsets."""
    from generator.operators.jagged_truncate import inputs_from_lengths

    params = {"index_dtype": "int32", "keep": keep}
    template = OPERATORS[NAME]
    inputs = inputs_from_lengths(params, lengths, 12, max_len, seed=5, device="cpu")
    outputs, expected = interpreted_run(NAME, params, fields(template.config_space(params)[0]), inputs)
    ok = all(compare(outputs[k], expected[k], *template.tolerance(expected[k].dtype)).ok for k in expected)
    return outputs["offsets"].diff().tolist(), ok


@pytest.mark.parametrize("params", [{}, {"keep": "last"}])
def test_identical_across_runs(interpreter_pool: Pool, params: dict[str, str]) -> None:
    assert interpreter_pool.apply(interpreted_twice, (params,))


@pytest.mark.parametrize("keep", ["first", "last"])
def test_explicit_length_pattern(interpreter_pool: Pool, keep: str) -> None:
    lengths = [0, 9, 0, 33, 2, 0, 70]
    kept, ok = interpreter_pool.apply(interpreted_lengths, (lengths, 8, keep))
    assert kept == [min(n, 8) for n in lengths] and ok


def naive_truncate(values: torch.Tensor, offsets: list[int], max_len: int, keep: str) -> tuple[torch.Tensor, list[int]]:
    rows, new_offsets = [], [0]
    for b in range(len(offsets) - 1):
        row = values[offsets[b] : offsets[b + 1]]
        kept = row[:max_len] if keep == "first" else row[max(0, row.shape[0] - max_len) :]
        rows.append(kept)
        new_offsets.append(new_offsets[-1] + kept.shape[0])
    return torch.cat(rows) if rows else values[:0], new_offsets


@pytest.mark.parametrize("keep", ["first", "last"])
@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_reference_matches_a_naive_loop(keep: str, index: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [0, 3, 7, 0, 1, 12, 5]
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    values = torch.randn(offsets[-1], 3, generator=gen)
    for max_len in (0, 1, 4, 5, 100):
        want_values, want_offsets = naive_truncate(values, offsets, max_len, keep)
        got_values, got_offsets = ref.jagged_truncate(values, torch.tensor(offsets, dtype=index), max_len=max_len, keep=keep)
        assert torch.equal(got_values, want_values) and got_offsets.tolist() == want_offsets
        assert got_offsets.dtype == index
    with pytest.raises(ValueError):
        ref.jagged_truncate(values, torch.tensor(offsets), max_len=2, keep="middle")
    with pytest.raises(ValueError):
        ref.jagged_truncate(values, torch.tensor(offsets), max_len=-1)


def test_template_reference_pads_to_the_planned_buffer() -> None:
    """The kernel fills min(L, B*N) rows; past the kept items they are 0."""
    template = OPERATORS[NAME]
    inputs = template.make_inputs({}, {"B": 4, "D": 5, "len_min": 3, "len_max": 9, "N": 2}, 0, "cpu")
    expected = template.reference({}, inputs)
    assert expected["values"].shape == (min(inputs["values"].shape[0], 4 * 2), 5)
    assert expected["values"].shape == template.allocate_outputs({}, inputs)["values"].shape


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
def test_default_config_cross_compiles(arch: str) -> None:
    record = RECORDS[arch]
    params = {"D": "128", "dtype": "bf16", "keep": "last"}
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert {k.entry_point for k in report.kernels} == {"jagged_truncate_offsets_kernel", "jagged_truncate_kernel"}
    assert all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(1)
    values, offsets = torch.randn(20, 6, generator=gen), torch.tensor([0, 4, 4, 15, 20])
    for keep in ("first", "last"):
        got = kreg.ops.jagged_truncate(values, offsets, max_len=3, keep=keep)
        want = ref.jagged_truncate(values, offsets, max_len=3, keep=keep)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert str(kreg.ops.explain("jagged_truncate", values.bfloat16(), offsets, max_len=3, keep="last").operator) == (
        "jagged_truncate@1{D=6,dtype=bf16,keep=last}"
    )
    assert str(kreg.ops.explain("jagged_truncate", values, offsets.int(), max_len=3).operator) == (
        "jagged_truncate@1{D=6,dtype=fp32,index_dtype=int32}"
    )
