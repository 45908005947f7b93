"""dcn_lowrank_cross@1: interpreted kernel runs in test_operators_interpreter's spawned pool
against the reference (tiny B, N, r), the reference against a naive loop, cross-compilation
of the default config, kreg.ops without configure()."""

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

NAME = "dcn_lowrank_cross"
PARAMS = [{}, {"dtype": "bf16"}, {"dtype": "fp16", "N": "24", "r": "8", "layers": "2"}]
RANDOM_DIMS = {"B": 19, "N": 40, "r": 24, "layers": 3}


def check_cases() -> list[object]:
    return config_cases(NAME, PARAMS)


def round_bf16_to_nearest() -> None:
    """Make the interpreter round fp32 -> bf16 casts to nearest even, as the GPUs' cvt.rn does.

    Triton's interpreter truncates them (about half of all casts end one ulp low), and this
    kernel rounds twice per layer, so over three layers truncation drifts several ulps from
    the reference; fp16 casts already round to nearest. Once per process, in pool workers.
    """
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    convert = interpreter._convert_float
    if getattr(convert, "_rne_bf16", False):
        return

    def rounded(values, input_dtype, output_dtype, rounding_mode):  # type: ignore[no-untyped-def]
        if input_dtype != tl.float32 or output_dtype != tl.bfloat16 or rounding_mode is not None:
            return convert(values, input_dtype, output_dtype, rounding_mode)
        bits = np.frombuffer(np.ascontiguousarray(values, dtype=np.float32).tobytes(), dtype=np.uint32).astype(np.uint64)
        nearest = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        nan = np.isnan(np.asarray(values, dtype=np.float32)).reshape(-1)
        nearest[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
        return nearest.reshape(np.shape(values))

    rounded._rne_bf16 = True  # type: ignore[attr-defined]
    interpreter._convert_float = rounded


def interpreted_check_rne(*args: object) -> tuple[str | None, bool]:
    round_bf16_to_nearest()
    return interpreted_check(*args)  # type: ignore[arg-type]


def interpreted_twice() -> bool:
    round_bf16_to_nearest()
    template = OPERATORS[NAME]
    config = fields(template.config_space({})[-1])
    inputs = template.make_inputs({}, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, {}, config, inputs)
    second, _ = interpreted_run(NAME, {}, config, inputs)
    return torch.equal(first["out"], second["out"])


@pytest.mark.parametrize("params, config", check_cases())
def test_kernel_matches_reference(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    dims = {**RANDOM_DIMS, **{k: int(v) for k, v in params.items() if k != "dtype"}}
    tasks = [(NAME, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check_rne, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice)


def test_reference_matches_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    batch, width, rank, layers = 3, 5, 2, 3
    x0 = torch.randn(batch, width, generator=gen, dtype=torch.float64)
    V = torch.randn(layers, rank, width, generator=gen, dtype=torch.float64)
    W = torch.randn(layers, width, rank, generator=gen, dtype=torch.float64)
    bias = torch.randn(layers, width, generator=gen, dtype=torch.float64)
    expected = []
    for b in range(batch):
        xl = x0[b].tolist()
        for layer in range(layers):
            xv = [sum(V[layer, j, k].item() * xl[k] for k in range(width)) for j in range(rank)]
            xw = [sum(W[layer, n, j].item() * xv[j] for j in range(rank)) + bias[layer, n].item() for n in range(width)]
            xl = [x0[b, n].item() * xw[n] + xl[n] for n in range(width)]
        expected.append(xl)
    torch.testing.assert_close(ref.dcn_lowrank_cross(x0, V, W, bias), torch.tensor(expected, dtype=torch.float64))
    # TorchRec's LowRankCrossNet forward, written with F.linear, agrees in fp32.
    x0f, Vf, Wf, bf = (t.float() for t in (x0, V, W, bias))
    xl = x0f
    for layer in range(layers):
        xl = x0f * torch.nn.functional.linear(torch.nn.functional.linear(xl, Vf[layer]), Wf[layer], bf[layer]) + xl
    torch.testing.assert_close(ref.dcn_lowrank_cross(x0f, Vf, Wf, bf), xl)
    with pytest.raises(ValueError):
        ref.dcn_lowrank_cross(x0, V, W[:, :, :1], bias)


PRODUCTION = {"N": "3456", "dtype": "bf16", "layers": "3", "r": "512"}


@pytest.mark.parametrize(
    "params, arch",
    [({"N": "64", "r": "32"}, arch) for arch in ("sm_80", "sm_90", "sm_100", "gfx90a", "gfx942")]
    + [(PRODUCTION, "sm_90"), (PRODUCTION, "gfx942")],
)
def test_default_config_cross_compiles(params: dict[str, str], arch: str) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    inputs = OPERATORS[NAME].make_inputs({}, {"B": 4, "N": 12, "r": 3, "layers": 3}, 0, "cpu")
    args = (inputs["x0"], inputs["V"], inputs["W"], inputs["bias"])
    assert torch.equal(kreg.ops.dcn_lowrank_cross(*args), ref.dcn_lowrank_cross(*args))
    assert str(kreg.ops.explain(NAME, *args).operator) == "dcn_lowrank_cross@1{N=12,dtype=fp32,layers=3,r=3}"


@pytest.mark.parametrize("params", [{}, {"N": "3456", "dtype": "bf16", "layers": "3", "r": "512"}, {"dtype": "bf16", "r": "64"}])
def test_config_space_fits_the_kernel(params: dict[str, str]) -> None:
    from test_operators_interpreter import kernel_constexprs

    template = OPERATORS[NAME]
    configs = template.config_space(params)
    assert 12 <= len(configs) <= 64 and len(set(configs)) == len(configs)
    dims = {**RANDOM_DIMS, **{k: int(v) for k, v in params.items() if k != "dtype"}, "B": 2}
    inputs = template.make_inputs(params, dims, 0, "cpu")
    outputs = template.allocate_outputs(params, inputs)
    entry_points = kernel_constexprs(template)
    for config in spread(configs):
        for launch in template.launches(params, config, inputs, outputs):
            assert set(config.constexprs) | set(launch.constexprs) == entry_points[launch.entry_point]
