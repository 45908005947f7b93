"""Served backward kernels against the reference's backward, on CPU in Triton's interpreter.

For every operator with a backward kernel (kreg.ops.backward.WRT): the real worker generates
and publishes its `<op>_backward` key (INTERPRETED: compiled for the host, verified in the
interpreter), then a training process (a spawned worker with TRITON_INTERPRET=1) configured
against the registry runs the op forward and backward through kreg.ops and autograd. The
gradients must match those of the reference (kreg.ops.reference under autograd), and the
backward op's decision must name the served artifact. The forward keys are not generated:
their reference runs, so what is compared is the served backward kernel alone.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any

import kreg.ops
import torch
from kreg.client import Client
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import EvidenceTier, JobState, ResolutionKind
from kreg.ops import reference as ref
from kreg.ops.backward import WRT, backward_spec
from test_ops_dispatch import cpu_runtime, interpreter  # noqa: F401  (interpreter is a fixture)

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.worker import WorkerConfig, process, worker_info

MODEL = "backward-test"


def _offsets(*lengths: int) -> torch.Tensor:
    return torch.tensor([0, *lengths]).cumsum(0)


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_GEN)


_GEN = torch.Generator().manual_seed(0)
_OFFSETS = _offsets(3, 0, 11, 1)  # an empty row, a row past every truncation length
_TARGETS = torch.tensor([1, 0, 2, 0])

Call = Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]

# Per op: the backward key its call asks for, its differentiable inputs (small fp32, ragged
# rows), and the call given an ops module (kreg.ops, or the reference).
CASES: dict[str, tuple[str, dict[str, torch.Tensor], Call]] = {
    "jagged_sum": (
        "jagged_sum_backward@1{D=8,dtype=fp32,weighted=1}",
        {"values": _rand(15, 8), "weights": torch.rand(15, generator=_GEN)},
        lambda ops, t: ops.jagged_sum(t["values"], _OFFSETS, weights=t["weights"]),
    ),
    "jagged_softmax": (
        "jagged_softmax_backward@1{D=8,dtype=fp32}",
        {"values": _rand(15, 8)},
        lambda ops, t: ops.jagged_softmax(t["values"], _OFFSETS, max_len=5),
    ),
    "jagged_to_padded_dense": (
        "jagged_to_padded_dense_backward@1{D=8,dtype=fp32}",
        {"values": _rand(15, 8)},
        lambda ops, t: ops.jagged_to_padded_dense(t["values"], _OFFSETS, max_len=6),
    ),
    "dense_to_jagged": (
        "dense_to_jagged_backward@1{D=8,dtype=fp32}",
        {"dense": _rand(4, 6, 8)},
        lambda ops, t: ops.dense_to_jagged(t["dense"], _OFFSETS),
    ),
    "dlrm_dot_interaction": (
        "dlrm_dot_interaction_backward@1{D=8,F=3,dtype=fp32}",
        {"dense": _rand(4, 8), "sparse": _rand(4, 3, 8)},
        lambda ops, t: ops.dlrm_dot_interaction(t["dense"], t["sparse"]),
    ),
    "dcn_lowrank_cross": (
        "dcn_lowrank_cross_backward@1{N=16,dtype=fp32,layers=2,r=4}",
        {"x0": _rand(5, 16), "V": _rand(2, 4, 16) / 4, "W": _rand(2, 16, 4) / 2, "bias": _rand(2, 16)},
        lambda ops, t: ops.dcn_lowrank_cross(t["x0"], t["V"], t["W"], t["bias"]),
    ),
    "swish_layer_norm": (
        "swish_layer_norm_backward@1{D=16,dtype=fp32}",
        {"x": _rand(5, 16), "weight": _rand(16), "bias": _rand(16)},
        lambda ops, t: ops.swish_layer_norm(t["x"], t["weight"], t["bias"]),
    ),
    "layer_norm_mul": (
        "layer_norm_mul_backward@1{D=16,act=silu,dtype=fp32}",
        {"x": _rand(5, 16), "u": _rand(5, 16), "weight": _rand(16), "bias": _rand(16)},
        lambda ops, t: ops.layer_norm_mul(t["x"], t["u"], t["weight"], t["bias"], act="silu"),
    ),
    "jagged_flash_attention": (
        "jagged_flash_attention_backward@1{D=16,dtype=fp32}",
        {"q": _rand(15, 16), "k": _rand(15, 16), "v": _rand(15, 16)},
        lambda ops, t: ops.jagged_flash_attention(t["q"], t["k"], t["v"], _OFFSETS, max_len=6),
    ),
    "hstu_attention": (
        "hstu_attention_backward@1{D=16,H=2,dtype=fp32}",
        {"q": _rand(15, 2, 16), "k": _rand(15, 2, 16), "v": _rand(15, 2, 16)},
        lambda ops, t: ops.hstu_attention(t["q"], t["k"], t["v"], _OFFSETS, max_len=11, num_targets=_TARGETS),
    ),
}


def key_of(name: str) -> KernelKey:
    return KernelKey("cpu", "x86_64", MODEL, OperatorSpec.parse(CASES[name][0]))


def gradients(ops: Any, name: str) -> list[torch.Tensor]:
    """The gradients of every differentiable input for a fixed random output gradient."""
    _, inputs, call = CASES[name]
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    out = call(ops, leaves)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return list(torch.autograd.grad((out * weight).sum(), list(leaves.values())))


def served_gradients(address: str, names: list[str]) -> dict[str, Any]:
    """In the interpreter worker: each op's gradients through kreg.ops against the registry,
    and the reference's, with the backward op's decision."""
    from kreg.ops.provider import interpreting

    assert interpreting(), "worker without TRITON_INTERPRET=1"
    results = {}
    with Client(address, timeout_s=10, runtime=cpu_runtime()) as client:
        kreg.ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        for name in names:
            got = gradients(kreg.ops, name)
            decision = kreg.ops.last_decision(f"{name}_backward")
            results[name] = {
                "got": got,
                "want": gradients(ref, name),
                "decision": (decision.path, str(decision.key), decision.artifact_id, decision.reason) if decision else None,
            }
    kreg.ops.reset()
    return results


class _Explain:
    """An ops module whose ops say what they would run (kreg.ops.explain) instead of running."""

    def __getattr__(self, op: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: kreg.ops.explain(op, *args, **kwargs)


def test_cases_cover_every_backward_operator_and_name_its_key() -> None:
    assert set(CASES) == set(WRT)
    for name, (key, inputs, call) in CASES.items():
        explained = call(_Explain(), inputs)
        assert str(backward_spec(OperatorSpec.parse(explained.operator))) == key


def test_served_backward_kernels_match_the_reference_backward(server, interpreter: Pool) -> None:  # type: ignore[no-untyped-def]
    settings = GenerationSettings(candidate_timeout_s=300, seeds=(0,))
    config = WorkerConfig(registry=server.address, settings=settings)
    artifacts = {}
    with Evaluators(use_device=False) as evaluators, Client(server.address, timeout_s=10, runtime=cpu_runtime()) as client:
        jobs = client.request_generation([key_of(name) for name in CASES])
        assert len(jobs) == len(CASES)
        info = worker_info(config, evaluators)
        for _ in CASES:
            job = client.lease_job(info, wait_s=2, lease_s=600)
            assert job is not None
            process(client, job, evaluators, config)
            done, log = client.get_job(job.job_id)
            assert done.state is JobState.SUCCEEDED, (str(job.key), done.last_error, [c.reason for c in log])
        for name in CASES:
            resolution = client.get_kernel(key_of(name))
            assert resolution.kind is ResolutionKind.SOURCE and resolution.artifact is not None, (name, resolution.reason)
            assert resolution.artifact.tier is EvidenceTier.INTERPRETED
            artifacts[name] = resolution.artifact.artifact_id

    results = interpreter.apply(served_gradients, (server.address, list(CASES)))

    for name, result in results.items():
        assert result["decision"][:3] == ("source", str(key_of(name)), artifacts[name]), (name, result["decision"])
        for got, want in zip(result["got"], result["want"], strict=True):
            torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5, msg=lambda m: f"{name}: {m}")
