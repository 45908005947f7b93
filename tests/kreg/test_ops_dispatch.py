"""kreg.ops: the public ops dispatch to the served kernel or run the reference.

On this CPU-only machine binaries cannot load (kreg.loader.load_compiled needs the GPU whose
arch they were built for; the GPU bench exercises that path). The served-kernel path is the
SOURCE one: a real artifact made by the real pipeline for cpu/x86_64 (which has no compile
target, so it is source-only) is published, resolved and run in a spawned child under
Triton's interpreter (Triton picks interpreting or compiling once per process, and this
process stays compiling for the rest of the suite).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import kreg.ops
import pytest
import torch
from kreg.client import Client
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import (
    Artifact,
    Digest,
    EvidenceTier,
    JobState,
    KernelBinary,
    LaunchAbi,
    LaunchParam,
    ResolutionKind,
    Runtime,
    Target,
    Toolchain,
)
from kreg.ops import reference as ref
from kreg.ops.launch import KernelLaunch
from kreg.ops.loaded import LoadedKernel, LoadedOp, binary_mismatch, config_of
from kreg.ops.plans import PLANS

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.worker import WorkerConfig, process, worker_info

MODEL = "ops-test"
SERVED = OperatorSpec.parse("jagged_sum@1{D=8,dtype=fp32}")
KEY = KernelKey("cpu", "x86_64", MODEL, SERVED)


def cpu_runtime() -> Runtime:
    import triton

    return Runtime(Toolchain(triton.__version__, "cpu"))


def jagged(rows: list[int], width: int, dtype: torch.dtype = torch.float32, index: torch.dtype = torch.int64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(sum(rows) + width)
    lengths = torch.tensor(rows, dtype=torch.int64)
    offsets = torch.zeros(len(rows) + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    values = torch.randn(int(offsets[-1]), width, generator=gen).to(dtype)
    return values, offsets.to(index)


@pytest.fixture(autouse=True)
def no_provider() -> Iterator[None]:
    kreg.ops.reset()
    yield
    kreg.ops.reset()


# --- (a) without configure(), every op is exactly its reference --------------------------------


def test_without_configure_every_op_is_exactly_the_reference() -> None:
    values, offsets = jagged([3, 0, 5, 1], 6)
    dense, sparse = torch.randn(3, 8), torch.randn(3, 4, 8)
    ids = torch.tensor([0, 1, -5, 2**40, -(2**63)], dtype=torch.int64)
    assert torch.equal(kreg.ops.jagged_sum(values, offsets), ref.jagged_sum(values, offsets))
    assert torch.equal(kreg.ops.jagged_sum(values, offsets, mean=True), ref.jagged_sum(values, offsets, mean=True))
    assert torch.equal(kreg.ops.jagged_softmax(values, offsets, max_len=2), ref.jagged_softmax(values, offsets, max_len=2))
    assert torch.equal(kreg.ops.dlrm_dot_interaction(dense, sparse), ref.dlrm_dot_interaction(dense, sparse))
    assert torch.equal(kreg.ops.sigrid_hash(ids, salt=7, modulus=1000), ref.sigrid_hash(ids, salt=7, modulus=1000))
    decision = kreg.ops.explain("jagged_sum", values, offsets)
    assert decision.path == "reference" and "configure" in decision.reason
    assert decision.operator == "jagged_sum@1{D=6,dtype=fp32}"
    assert kreg.ops.last_decision("jagged_sum") is None


def test_invalid_inputs_get_the_references_errors(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address, timeout_s=5) as client:
        kreg.ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        with pytest.raises(ValueError):
            kreg.ops.jagged_sum(torch.randn(4), torch.tensor([0, 4]))
        with pytest.raises(TypeError):
            kreg.ops.sigrid_hash(torch.randn(3), salt=0, modulus=5)
        with pytest.raises(ValueError):
            kreg.ops.jagged_softmax(*jagged([2], 3), max_len=-1)
    decision = kreg.ops.last_decision("jagged_softmax")
    assert decision is not None and decision.path == "reference" and "max_len" in decision.reason


def test_ops_name_their_keys_as_the_templates_and_profiles_do() -> None:
    from kreg.profiles import PROFILES

    from generator.operators import OPERATORS

    values, offsets = jagged([2, 3], 128, torch.float32)
    bf_values, int32_offsets = jagged([2, 3], 24, torch.bfloat16, torch.int32)
    named = {
        str(kreg.ops.explain("jagged_sum", values, offsets).operator),
        str(kreg.ops.explain("jagged_sum", bf_values, int32_offsets, mean=True).operator),
        str(kreg.ops.explain("jagged_softmax", values.bfloat16(), offsets, max_len=5).operator),
        str(kreg.ops.explain("dlrm_dot_interaction", torch.randn(2, 128).bfloat16(), torch.randn(2, 26, 128).bfloat16()).operator),
        str(kreg.ops.explain("sigrid_hash", torch.tensor([1, 2], dtype=torch.int32), salt=0, modulus=3).operator),
        str(kreg.ops.explain("jagged_sum", values, offsets, weights=torch.ones(5)).operator),
        str(kreg.ops.explain("embedding_bag", values, torch.tensor([0, 4, 1]), torch.tensor([0, 1, 3]), mean=True).operator),
    }
    assert named == {
        "jagged_sum@1{D=128,dtype=fp32}",
        "jagged_sum@1{D=24,dtype=bf16,index_dtype=int32,mean=1}",
        "jagged_softmax@1{D=128,dtype=bf16}",
        "dlrm_dot_interaction@1{D=128,F=26,dtype=bf16}",
        "sigrid_hash@1{dtype=int64}",
        "jagged_sum@1{D=128,dtype=fp32,weighted=1}",
        "jagged_sum@1{D=128,dtype=fp32,gather=1,mean=1}",
    }
    ln_x, ln_w = torch.randn(2, 512).bfloat16(), torch.randn(512).bfloat16()
    layer_norms = {
        str(kreg.ops.explain("swish_layer_norm", ln_x, ln_w, ln_w).operator),
        str(kreg.ops.explain("layer_norm_mul", ln_x, ln_x, ln_w, ln_w, act="silu").operator),
    }
    assert layer_norms == {"swish_layer_norm@1{D=512,dtype=bf16}", "layer_norm_mul@1{D=512,act=silu,dtype=bf16}"}
    named |= layer_norms
    histories, starts = jagged([3, 0, 5], 512, torch.bfloat16)
    jagged_dense = {
        str(kreg.ops.explain("jagged_truncate", histories, starts, max_len=4, keep="last").operator),
        str(kreg.ops.explain("jagged_to_padded_dense", histories, starts, max_len=4).operator),
        str(kreg.ops.explain("dense_to_jagged", torch.randn(3, 4, 512).bfloat16(), starts).operator),
    }
    assert jagged_dense == {
        "jagged_truncate@1{D=512,dtype=bf16,keep=last}",
        "jagged_to_padded_dense@1{D=512,dtype=bf16}",
        "dense_to_jagged@1{D=512,dtype=bf16}",
    }
    named |= jagged_dense
    heads = torch.randn(8, 4, 128).bfloat16()
    attention = {
        str(kreg.ops.explain("hstu_attention", heads, heads, heads, torch.tensor([0, 3, 8]), max_len=6).operator),
        str(kreg.ops.explain("jagged_flash_attention", heads[:, 0], heads[:, 0], heads[:, 0], torch.tensor([0, 3, 8]).int(), max_len=6).operator),
    }
    assert attention == {"hstu_attention@1{D=128,H=4,dtype=bf16}", "jagged_flash_attention@1{D=128,dtype=bf16,index_dtype=int32}"}
    named |= attention
    sparse_offsets, sparse_ids = torch.tensor([0, 2, 2, 5]), torch.tensor([4, 9, 1, 0, 7])
    bucketing = {
        str(kreg.ops.explain("bucketize_sparse_features", sparse_offsets, sparse_ids, 2, block_sizes=torch.tensor([5])).operator),
        str(kreg.ops.explain("bucketize_sparse_features", sparse_offsets.int(), sparse_ids, 2, positions=True).operator),
        str(kreg.ops.explain("batched_dense_bucketize", torch.randn(2, 13), torch.arange(26.0), torch.arange(0, 27, 2)).operator),
    }
    assert bucketing == {
        "bucketize_sparse_features@1{block=1,dtype=int64}",
        "bucketize_sparse_features@1{dtype=int64,index_dtype=int32,positions=1}",
        "batched_dense_bucketize@1{F=13,dtype=fp32}",
    }
    named |= bucketing
    dcn_key = str(
        kreg.ops.explain(
            "dcn_lowrank_cross",
            torch.randn(2, 3456).bfloat16(),
            torch.randn(3, 512, 3456).bfloat16(),
            torch.randn(3, 3456, 512).bfloat16(),
            torch.randn(3, 3456).bfloat16(),
        ).operator
    )
    assert dcn_key == "dcn_lowrank_cross@1{N=3456,dtype=bf16,layers=3,r=512}"
    named.add(dcn_key)
    profiled = {str(k.operator) for kernels in PROFILES.values() for k in kernels}
    assert profiled <= named
    for text in named:  # every name is one the template accepts
        spec = OperatorSpec.parse(text)
        OPERATORS[spec.name].config_space(dict(spec.params))


# --- (b) a real generated artifact, served as SOURCE, runs in the interpreter ------------------


@pytest.fixture(scope="module")
def evaluators() -> Iterator[Evaluators]:
    with Evaluators(use_device=False) as e:
        yield e


@pytest.fixture(scope="module")
def interpreter() -> Iterator[Pool]:
    """One spawned worker with TRITON_INTERPRET=1 from its first instruction (see
    tests/generator/test_operators_interpreter.py's interpreter_pool)."""
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pool = multiprocessing.get_context("spawn").Pool(processes=1)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def generate_and_publish(address: str, evaluators: Evaluators, key: KernelKey) -> None:
    """The real worker path: queue, lease, search/verify in the evaluator children, publish."""
    config = WorkerConfig(registry=address, settings=GenerationSettings(candidate_timeout_s=120))
    with Client(address, timeout_s=10) as client:
        client.get_kernel(key)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=60)
        assert job is not None and job.key == key
        process(client, job, evaluators, config)
        done, _ = client.get_job(job.job_id)
    assert done.state is JobState.SUCCEEDED, done.last_error


def served_in_interpreter(address: str, lockfile: str, cache_dir: str) -> dict[str, Any]:
    """In the interpreter worker: run kreg.ops.jagged_sum through a provider backed by the
    registry, then through one started from the lockfile and node cache alone."""
    from kreg.ops.provider import interpreting

    ops = kreg.ops

    assert interpreting(), "worker without TRITON_INTERPRET=1"
    values, offsets = jagged([3, 0, 17, 1, 0, 40], 8)
    with Client(address, timeout_s=10, runtime=cpu_runtime()) as client:
        ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        preloaded = ops.preload([SERVED, OperatorSpec.parse("jagged_sum@1{D=8,dtype=fp32,mean=1}")])
        explained = ops.explain("jagged_sum", values, offsets)
        out = ops.jagged_sum(values, offsets)
        online = ops.last_decision("jagged_sum")
        # Compiled whole (no graph break), the model still runs the served kernel.
        compiled = torch.compile(lambda v, o: ops.jagged_sum(v, o) * 2, fullgraph=True, backend="aot_eager")
        compiled_out = compiled(values, offsets)
        in_graph = ops.last_decision("jagged_sum")
        # mean=1 names another key, which nobody generated: its reference runs.
        mean = ops.jagged_sum(values, offsets, mean=True)
        unpublished = ops.last_decision("jagged_sum")
    ops.configure(None, model=MODEL, platform="cpu", arch="x86_64", lockfile=lockfile, cache_dir=cache_dir)
    preloaded_offline = ops.preload([SERVED])
    offline_out = ops.jagged_sum(values, offsets)
    offline = ops.last_decision(KEY)
    decisions = {"explained": explained, "online": online, "in_graph": in_graph, "unpublished": unpublished, "offline": offline}
    return {
        "out": out,
        "compiled_out": compiled_out,
        "offline_out": offline_out,
        "expected": ref.jagged_sum(values, offsets),
        "mean": mean,
        "expected_mean": ref.jagged_sum(values, offsets, mean=True),
        "preloaded": [(d.path, str(d.key)) for d in preloaded],
        "preloaded_offline": [(d.path, str(d.key)) for d in preloaded_offline],
        # Plain data: a KernelKey's params are a mapping proxy, which does not pickle.
        **{name: (d.path, str(d.key), d.artifact_id, d.reason) for name, d in decisions.items() if d is not None},
    }


def test_a_generated_source_artifact_is_served_and_matches_the_reference(
    server, evaluators: Evaluators, interpreter: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    generate_and_publish(server.address, evaluators, KEY)
    lockfile, cache = tmp_path / "ops-test.lock.json", tmp_path / "cache"
    with Client(server.address, timeout_s=10, runtime=cpu_runtime(), cache_dir=cache) as client:
        resolution = client.get_kernel(KEY)
        client.pin_manifest("cpu", "x86_64", MODEL, [SERVED], lockfile)
    assert resolution.kind is ResolutionKind.SOURCE and resolution.artifact is not None
    artifact = resolution.artifact
    assert artifact.tier is EvidenceTier.INTERPRETED and not artifact.has_binaries

    got = interpreter.apply(served_in_interpreter, (server.address, str(lockfile), str(cache)))

    rtol, atol = 1e-5, 1e-5
    torch.testing.assert_close(got["out"], got["expected"], rtol=rtol, atol=atol)
    torch.testing.assert_close(got["offline_out"], got["expected"], rtol=rtol, atol=atol)
    assert torch.equal(got["mean"], got["expected_mean"])
    torch.testing.assert_close(got["compiled_out"], 2 * got["expected"], rtol=rtol, atol=atol)
    for name in ("explained", "online", "in_graph", "offline"):
        assert got[name][:3] == ("source", str(KEY), artifact.artifact_id), (name, got[name])
    assert "source only" in got["online"][3]
    assert got["unpublished"][:2] == ("reference", "cpu/x86_64/ops-test/jagged_sum@1{D=8,dtype=fp32,mean=1}")
    assert "no kernel published" in got["unpublished"][3]
    # preload answered both keys from one manifest, and loaded the served one before any call
    assert got["preloaded"] == [("source", str(KEY)), ("reference", got["unpublished"][1])]
    assert got["preloaded_offline"] == [("source", str(KEY))]

    # (d) once retracted, the same call runs the reference and says why. A REFERENCE answer
    # launches nothing, so this process may resolve for CPU tensors as the interpreter would.
    with Client(server.address, timeout_s=10, runtime=cpu_runtime()) as client:
        client.retract(artifact.artifact_id, "wrong results on ragged rows")
        monkeypatch.setattr("kreg.ops.provider.interpreting", lambda: True)
        kreg.ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        values, offsets = jagged([3, 0, 17], 8)
        with caplog.at_level(logging.WARNING, logger="kreg.ops"):
            out = kreg.ops.jagged_sum(values, offsets)
            kreg.ops.jagged_sum(values, offsets)
    assert torch.equal(out, ref.jagged_sum(values, offsets))
    decision = kreg.ops.last_decision(KEY)
    assert decision is not None and decision.path == "reference"
    assert "retracted: wrong results on ragged rows" in decision.reason
    assert len([r for r in caplog.records if "retracted" in r.getMessage()]) == 1  # once per key


# --- (c) a binary takes only the launches it was compiled for -----------------------------------


def test_int32_guard_sends_oversized_ints_to_the_jit_source() -> None:
    x = torch.empty(4, device="meta")
    params = (LaunchParam("x", "*fp32"), LaunchParam("n", "i32"), LaunchParam("m", "i64"))
    fits = KernelLaunch("k", (x, 2**31 - 1, 2**40), (1,))
    assert binary_mismatch(params, {}, fits) is None
    too_wide = KernelLaunch("k", (x, 2**31, 2**40), (1,))
    assert binary_mismatch(params, {}, too_wide) == "param n=2147483648 does not fit the binary's i32"
    too_low = KernelLaunch("k", (x, -(2**31) - 1, 0), (1,))
    assert "does not fit the binary's i32" in (binary_mismatch(params, {}, too_low) or "")
    assert "*fp16 tensor" in (binary_mismatch(params, {}, KernelLaunch("k", (x.half(), 1, 1), (1,))) or "")
    on_cpu = KernelLaunch("k", (torch.empty(4), 1, 1), (1,))
    assert "on the cpu" in (binary_mismatch(params, {}, on_cpu) or "")
    baked = KernelLaunch("k", (x, 1, 1), (1,), constexprs={"BLOCK_F": 32})
    assert "BLOCK_F=32" in (binary_mismatch(params, {"BLOCK_F": 16}, baked) or "")


def test_an_argument_the_binary_assumes_divisible_by_16_must_be() -> None:
    """A binary compiled with Triton's divisibility specialization (":16") takes only
    16-byte-aligned pointers and ints that are multiples of 16; anything else is the JIT's."""
    params = (LaunchParam("x", "*fp32:16"), LaunchParam("stride", "i32:16"), LaunchParam("n", "i32"))
    x = torch.empty(64, device="meta")
    assert LaunchParam("x", "*fp32:16").triton_type == "*fp32" and LaunchParam("x", "*fp32:16").divisible
    assert not LaunchParam("n", "i32").divisible
    assert binary_mismatch(params, {}, KernelLaunch("k", (x, 128, 7), (1,))) is None
    assert "multiple of 16, got 24" in (binary_mismatch(params, {}, KernelLaunch("k", (x, 24, 7), (1,))) or "")
    if torch.cuda.is_available():  # a meta tensor's address is 0: misalign a real one
        misaligned = torch.empty(64, device="cuda")[1:]
        assert "multiple of 16, got address" in (binary_mismatch(params, {}, KernelLaunch("k", (misaligned, 128, 7), (1,))) or "")


def _binary_jagged_sum(mean: bool = False) -> LoadedOp:
    """A jagged_sum artifact as a worker with a GPU would publish it (the ABI of a sample-shape
    build), loaded as a binary; nothing is launched, so the compiled kernel is a stand-in."""
    digest = Digest("0" * 64, 1)
    abi = LaunchAbi(
        params=(
            LaunchParam("values_ptr", "*fp32"),
            LaunchParam("offsets_ptr", "*i64"),
            LaunchParam("weights_ptr", "*i64"),
            LaunchParam("indices_ptr", "*i64"),
            LaunchParam("out_ptr", "*fp32"),
            LaunchParam("D", "i32"),
            LaunchParam("stride_values", "i32"),
            LaunchParam("stride_out", "i32"),
        ),
        constexprs=(("BLOCK_D", "32"), ("BLOCK_L", "16"), ("GATHER", "False"), ("MEAN", repr(mean)), ("WEIGHTED", "False")),
        num_warps=2,
        num_stages=1,
    )
    meta = KernelBinary("jagged_sum_kernel", "jagged_sum_kernel", digest, abi, digest, "cubin", digest)
    key = KernelKey("nvidia", "sm_90", MODEL, SERVED)
    artifact = Artifact(key, (meta,), Target("cuda", "sm_90", 32), Toolchain("3.9.0", "cuda"), EvidenceTier.TUNED)
    config = config_of(artifact)
    baked = {"BLOCK_D": 32, "BLOCK_L": 16, "GATHER": False, "MEAN": mean, "WEIGHTED": False}
    assert dict(config.constexprs) == baked
    assert (config.num_warps, config.num_stages) == (2, 1)
    kernel = LoadedKernel(meta, baked, compiled=object())
    return LoadedOp(artifact, PLANS["jagged_sum"], config, "binary", {"jagged_sum_kernel": kernel}, fetch=lambda d: b"")


def test_a_binary_artifact_plans_binary_launches_and_jit_for_what_it_cannot_take() -> None:
    op = _binary_jagged_sum()
    offsets = torch.tensor([0, 2, 2, 5], device="meta")
    values = torch.empty(5, 8, device="meta")
    outputs, planned = op.prepare({"D": "8", "dtype": "fp32"}, {"values": values, "offsets": offsets})
    assert outputs["out"].shape == (3, 8)
    assert [(p.path, p.reason) for p in planned] == [("binary", "")]
    assert planned[0].launch.grid == (3, 1)

    # A row stride past int32 (rows of a huge interleaved buffer): the binary took i32.
    wide = torch.empty_strided((5, 8), (2**31, 1), device="meta")
    _, planned = op.prepare({"D": "8", "dtype": "fp32"}, {"values": wide, "offsets": offsets})
    assert [(p.path, p.reason) for p in planned] == [("source", "param stride_values=2147483648 does not fit the binary's i32")]

    # A launch-fixed constexpr that differs from the baked one (mean=1 vs a MEAN=False binary).
    _, planned = op.prepare({"D": "8", "dtype": "fp32", "mean": "1"}, {"values": values, "offsets": offsets})
    assert planned[0].path == "source" and "MEAN=True" in planned[0].reason

    # No rows: nothing to launch.
    _, planned = op.prepare({"D": "8", "dtype": "fp32"}, {"values": values[:0], "offsets": offsets[:1]})
    assert planned == []


# --- (d) nothing published: the reference, and why ----------------------------------------------


def test_nothing_published_runs_the_reference_and_says_why(server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("kreg.ops.provider.interpreting", lambda: True)  # resolve for CPU tensors
    dense, sparse = torch.randn(3, 16), torch.randn(3, 5, 16)
    with Client(server.address, timeout_s=10, runtime=cpu_runtime()) as client:
        kreg.ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        out = kreg.ops.dlrm_dot_interaction(dense, sparse)
        jobs, _ = client.list_jobs()
    assert torch.equal(out, ref.dlrm_dot_interaction(dense, sparse))
    decision = kreg.ops.last_decision("dlrm_dot_interaction")
    assert decision is not None and decision.path == "reference"
    assert decision.reason.startswith("no kernel published for this key yet; generation job")
    assert str(decision.key) == "cpu/x86_64/ops-test/dlrm_dot_interaction@1{D=16,F=5,dtype=fp32}"
    assert [str(j.key) for j in jobs] == [str(decision.key)]  # the miss queued its generation


def test_cpu_tensors_run_the_reference_without_asking_the_registry() -> None:
    values, offsets = jagged([2, 2], 4)
    provider = kreg.ops.configure(None, model=MODEL, platform="cpu", arch="x86_64")
    assert torch.equal(kreg.ops.jagged_sum(values, offsets), ref.jagged_sum(values, offsets))
    decision = provider.last_decision("jagged_sum@1{D=4,dtype=fp32}")
    assert decision is not None and decision.path == "reference" and "on the cpu" in decision.reason


def test_an_unreachable_registry_without_a_lockfile_runs_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kreg.ops.provider.interpreting", lambda: True)
    ids = torch.arange(10)
    with Client("127.0.0.1:1", timeout_s=0.5, read_retries=0) as client:
        kreg.ops.configure(client, model=MODEL, platform="cpu", arch="x86_64")
        out = kreg.ops.sigrid_hash(ids, salt=3, modulus=7)
    assert torch.equal(out, ref.sigrid_hash(ids, salt=3, modulus=7))
    decision = kreg.ops.last_decision("sigrid_hash")
    assert decision is not None and decision.path == "reference"
    assert decision.reason.startswith("registry unreachable") and decision.reason.endswith("and no lockfile")


def test_importing_kreg_ops_imports_neither_torch_nor_triton() -> None:
    import subprocess
    import sys

    code = "import sys, kreg.ops, kreg.ops.plans, kreg.ops.loaded; print('torch' in sys.modules, 'triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_preload_needs_configure() -> None:
    with pytest.raises(RuntimeError, match=r"configure\(\) first"):
        kreg.ops.preload()
