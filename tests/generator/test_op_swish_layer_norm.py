"""swish_layer_norm@1 and layer_norm_mul@1 (they share a module layout and a search space):
interpreted kernel runs in test_operators_interpreter's spawned pool against the reference,
the reference against a naive loop, cross-compilation of the default config, kreg.ops."""

from __future__ import annotations

import math
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

PARAMS = {
    "swish_layer_norm": [{}, {"dtype": "bf16"}],
    "layer_norm_mul": [{"act": "silu"}, {"act": "sigmoid", "dtype": "fp16", "D": "24"}, {"dtype": "bf16"}],
}
RANDOM_DIMS = {"N": 11, "D": 40}


def check_cases() -> list[object]:
    out = []
    for name, param_sets in PARAMS.items():
        for params in param_sets:
            for index, config in enumerate(spread(OPERATORS[name].config_space(params))):
                label = f"{name}-{','.join(f'{k}={v}' for k, v in params.items()) or 'default'}-cfg{index}"
                out.append(pytest.param(name, params, fields(config), id=label))
    return out


def interpreted_twice(name: str, params: dict[str, str]) -> bool:
    template = OPERATORS[name]
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(name, params, config, inputs)
    second, _ = interpreted_run(name, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


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


@pytest.mark.parametrize("name, params", [("swish_layer_norm", {}), ("layer_norm_mul", {"act": "silu"})])
def test_identical_across_runs(interpreter_pool: Pool, name: str, params: dict[str, str]) -> None:
    assert interpreter_pool.apply(interpreted_twice, (name, params))


def naive_layer_norm(row: list[float], weight: list[float], bias: list[float]) -> list[float]:
    mean = sum(row) / len(row)
    var = sum((v - mean) ** 2 for v in row) / len(row)
    return [(v - mean) / math.sqrt(var + 1e-5) * w + b for v, w, b in zip(row, weight, bias)]


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_references_match_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    x, u = torch.randn(4, 6, generator=gen, dtype=torch.float64), torch.randn(4, 6, generator=gen, dtype=torch.float64)
    weight, bias = torch.randn(6, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    gates = {"none": lambda v: v, "sigmoid": sigmoid, "silu": lambda v: v * sigmoid(v)}
    swish, mul = [], {act: [] for act in gates}
    for r in range(4):
        y = naive_layer_norm(x[r].tolist(), weight.tolist(), bias.tolist())
        swish.append([xv * sigmoid(yv) for xv, yv in zip(x[r].tolist(), y)])
        for act, gate in gates.items():
            mul[act].append([gate(uv) * yv for uv, yv in zip(u[r].tolist(), y)])
    torch.testing.assert_close(ref.swish_layer_norm(x, weight, bias), torch.tensor(swish, dtype=torch.float64))
    for act in gates:
        torch.testing.assert_close(ref.layer_norm_mul(x, u, weight, bias, act=act), torch.tensor(mul[act], dtype=torch.float64))
    # Half inputs compute in fp32 and round once.
    xb = x.bfloat16()
    expected = ref.swish_layer_norm(xb.float(), weight.bfloat16().float(), bias.bfloat16().float()).bfloat16()
    assert torch.equal(ref.swish_layer_norm(xb, weight.bfloat16(), bias.bfloat16()), expected)
    with pytest.raises(ValueError):
        ref.layer_norm_mul(x, u, weight, bias, act="gelu")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("name, params", [("swish_layer_norm", {"D": "512", "dtype": "bf16"}), ("layer_norm_mul", {"D": "512", "act": "silu", "dtype": "bf16"})])
def test_default_config_cross_compiles(name: str, params: dict[str, str], arch: str) -> None:
    record = RECORDS[arch]
    config = OPERATORS[name].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{name}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.message
    assert report.kernels and all(k.binary is not None for k in report.kernels)


def test_kreg_ops_without_configure_is_the_reference() -> None:
    kreg.ops.reset()
    gen = torch.Generator().manual_seed(1)
    x, u = torch.randn(5, 12, generator=gen), torch.randn(5, 12, generator=gen)
    weight, bias = torch.randn(12, generator=gen), torch.randn(12, generator=gen)
    assert torch.equal(kreg.ops.swish_layer_norm(x, weight, bias), ref.swish_layer_norm(x, weight, bias))
    for act in ("none", "sigmoid", "silu"):
        assert torch.equal(kreg.ops.layer_norm_mul(x, u, weight, bias, act=act), ref.layer_norm_mul(x, u, weight, bias, act=act))
    assert str(kreg.ops.explain("swish_layer_norm", x.bfloat16(), weight.bfloat16(), bias.bfloat16()).operator) == (
        "swish_layer_norm@1{D=12,dtype=bf16}"
    )
    assert str(kreg.ops.explain("layer_norm_mul", x, u, weight, bias, act="silu").operator) == (
        "layer_norm_mul@1{D=12,act=silu,dtype=fp32}"
    )


@pytest.mark.parametrize(
    "name, params",
    [("swish_layer_norm", {}), ("swish_layer_norm", {"D": "512", "dtype": "bf16"}), ("layer_norm_mul", {"D": "512", "act": "silu", "dtype": "bf16"})],
)
def test_config_space_fits_the_kernel(name: str, params: dict[str, str]) -> None:
    from test_operators_interpreter import kernel_constexprs

    template = OPERATORS[name]
    configs = template.config_space(params)
    assert 12 <= len(configs) <= 60 and len(set(configs)) == len(configs)
    inputs = template.make_inputs(params, {"N": 3, "D": int(params.get("D", 40))}, 0, "cpu")
    outputs = template.allocate_outputs(params, inputs)
    entry_points = kernel_constexprs(template)
    for config in spread(configs):
        for launch in template.launches(params, config, inputs, outputs):
            assert set(config.constexprs) | set(launch.constexprs) == entry_points[launch.entry_point]
    with pytest.raises(ValueError, match="act"):
        OPERATORS["layer_norm_mul"].config_space({"act": "gelu"})
