"""The `kreg` command line against a live server: tables, --json, exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from integration.factories import KEY, make_artifact
from kreg.cli import main
from kreg.client import Client
from kreg.keys import OperatorSpec


def kreg(server, capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["--registry", server.address, "--timeout", "5", *args])
    out, err = capsys.readouterr()
    return code, out, err


def write_spec(tmp_path: Path) -> Path:
    (tmp_path / "kernel.py").write_text("@triton.jit\ndef jagged_sum_kernel(x): pass\n")
    (tmp_path / "kernel.cubin").write_bytes(os.urandom(2048))
    (tmp_path / "kernel.json").write_text('{"name": "jagged_sum_kernel"}')
    spec = {
        "key": str(KEY),
        "target": {"backend": "cuda", "arch": "sm_90", "warp_size": 32},
        "toolchain": {"triton_version": "3.6.0", "backend": "cuda"},
        "tier": "TUNED",
        "kernels": [
            {
                "name": "main",
                "entry_point": "jagged_sum_kernel",
                "source": "kernel.py",
                "binary": "kernel.cubin",
                "binary_format": "cubin",
                "metadata": "kernel.json",
                "abi": {"num_warps": 4, "num_stages": 2, "grid": ["B"]},
            }
        ],
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_publish_then_get_ls_describe_and_retract(server, capsys, tmp_path: Path) -> None:
    code, out, _ = kreg(server, capsys, "publish", str(write_spec(tmp_path)), "--json")
    assert code == 0
    artifact_id = json.loads(out)["artifact_id"]
    assert len(artifact_id) == 64

    code, out, _ = kreg(server, capsys, "get", str(KEY), "--toolchain", "3.6.0/cuda", "--json")
    assert code == 0 and json.loads(out)["kind"] == "BINARY"

    code, out, _ = kreg(server, capsys, "get", str(KEY), "--toolchain", "3.9.0/cuda")
    assert code == 0 and "source" in out and "3.6.0" in out

    code, out, _ = kreg(server, capsys, "ls")
    assert code == 0 and str(KEY) in out and artifact_id[:12] in out

    code, out, _ = kreg(server, capsys, "describe", str(KEY))
    assert code == 0 and artifact_id in out and "cubin" in out

    code, out, _ = kreg(server, capsys, "retract", artifact_id, "--reason", "bad numerics")
    assert code == 0 and "retracted" in out
    code, out, _ = kreg(server, capsys, "get", str(KEY), "--toolchain", "3.6.0/cuda", "--no-queue", "--json")
    assert json.loads(out)["kind"] == "REFERENCE"


def test_manifest_table_and_jobs(server, capsys) -> None:
    code, out, _ = kreg(server, capsys, "manifest", "--platform", "nvidia", "--arch", "sm_90", "--model", "dlrm-v2",
                        "jagged_sum@1{D=128,dtype=bf16}", "sigrid_hash@1")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["operator", "kind", "tier"]
    assert out.count("reference") == 2
    code, out, _ = kreg(server, capsys, "jobs", "--json")
    jobs = json.loads(out)
    assert code == 0 and len(jobs) == 2 and {j["state"] for j in jobs} == {"QUEUED"}
    code, out, _ = kreg(server, capsys, "jobs", jobs[0]["job_id"])
    assert code == 0 and "queued" in out


def test_manifest_lock_pins_and_fetches(server, capsys, tmp_path: Path) -> None:
    with Client(server.address) as client:
        client.publish(*make_artifact())
    lock = tmp_path / "model.lock"
    code, _, err = kreg(server, capsys, "manifest", "--platform", "nvidia", "--arch", "sm_90", "--model", "dlrm-v2",
                        "--toolchain", "3.6.0/cuda", "--lock", str(lock), "--cache", str(tmp_path / "cache"), str(KEY.operator))
    assert code == 0 and "pinned 1 resolutions and 3 blobs" in err
    assert json.loads(lock.read_text())["resolutions"][0]["kind"] == "BINARY"


def test_get_wait_reports_progress_and_exits_7_when_generation_fails(server, capsys) -> None:
    from integration.factories import WORKER
    import threading

    def fail_it() -> None:
        with Client(server.address) as worker:
            for _ in range(3):
                job = worker.lease_job(WORKER, wait_s=5, lease_s=30)
                assert job is not None
                worker.fail_job(job.job_id, job.lease_id, reason="nothing compiled", retryable=True)

    t = threading.Thread(target=fail_it)
    t.start()
    code, out, err = kreg(server, capsys, "get", str(KEY), "--wait", "20")
    t.join()
    assert code == 7
    assert "waiting up to" in err and "job" in err
    assert "generation failed (nothing compiled)" in out


def test_exit_codes_mean_something(server, capsys, tmp_path: Path) -> None:
    assert kreg(server, capsys, "get", "nvidia/hopper/m/op@1")[0] == 2
    assert kreg(server, capsys, "describe", "0" * 64)[0] == 3
    assert kreg(server, capsys, "jobs", "nope")[0] == 3
    (tmp_path / "bad.json").write_text("{")
    code, _, err = kreg(server, capsys, "publish", str(tmp_path / "bad.json"))
    assert code == 2 and "not JSON" in err
    code = main(["--registry", "127.0.0.1:1", "--timeout", "0.5", "ls"])
    assert code == 4 and "Unavailable" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_drains_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kreg.cli", "serve", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{port}", "--grace", "2", "--workers", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 30
            while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with Client(f"127.0.0.1:{port}") as client:
            assert client.publish(*make_artifact()).artifact_id
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
        assert proc.returncode == 0, output
        assert "draining" in output
    finally:
        if proc.poll() is None:
            proc.kill()


def test_warm_queues_what_a_model_lacks_and_manifest_defaults_to_the_profile(server, capsys) -> None:
    from kreg.profiles import profile

    ops = profile("dlrm-v2")
    with Client(server.address) as client:
        client.publish(*make_artifact(KEY.__class__("nvidia", "sm_90", "dlrm-v2", ops[0])))
    code, _, err = kreg(server, capsys, "warm", "--model", "dlrm-v2", "--platform", "nvidia", "--arch", "sm_90")
    assert code == 0 and f"{len(ops) - 1} queued" in err and "1 already served" in err
    code, out, _ = kreg(server, capsys, "jobs", "--json")
    assert sorted(j["key"] for j in json.loads(out)) == sorted(f"nvidia/sm_90/dlrm-v2/{op}" for op in ops[1:])
    code, out, _ = kreg(server, capsys, "manifest", "--platform", "nvidia", "--arch", "sm_90", "--model", "dlrm-v2", "--no-queue", "--json")
    assert code == 0 and [r["key"] for r in json.loads(out)] == [f"nvidia/sm_90/dlrm-v2/{op}" for op in ops]
    code, _, err = kreg(server, capsys, "warm", "--model", "no-such-model", "--platform", "nvidia", "--arch", "sm_90")
    assert code == 2 and "no profile for model" in err


def test_a_training_job_warms_and_pins_the_backward_kernels_too(server, capsys) -> None:  # type: ignore[no-untyped-def]
    """--training adds, right after each differentiable operator of the profile, its backward
    operator (same params, its own key), and the registry tunes it on the forward's shapes."""
    from kreg.profiles import profile, tuning_shapes

    forward, training = profile("hstu-ranker"), profile("hstu-ranker", training=True)
    backward = [op for op in training if op not in forward]
    assert [op.name for op in backward] == [f"{op.name}_backward" for op in forward if op.name != "jagged_truncate"]
    for op in backward:
        shapes = tuning_shapes("hstu-ranker", op)
        assert shapes and shapes == tuning_shapes("hstu-ranker", OperatorSpec(op.name.removesuffix("_backward"), 1, op.params))
    code, _, err = kreg(server, capsys, "warm", "--model", "hstu-ranker", "--platform", "nvidia", "--arch", "sm_90", "--training")
    assert code == 0 and f"{len(training)} queued" in err
    code, out, _ = kreg(server, capsys, "jobs", "--json")
    jobs = {j["key"]: j for j in json.loads(out)}
    assert sorted(jobs) == sorted(f"nvidia/sm_90/hstu-ranker/{op}" for op in training)
    code, out, _ = kreg(server, capsys, "manifest", "--platform", "nvidia", "--arch", "sm_90", "--model", "hstu-ranker", "--training", "--no-queue", "--json")
    assert code == 0 and [r["key"] for r in json.loads(out)] == [f"nvidia/sm_90/hstu-ranker/{op}" for op in training]
