"""Retraction reaches a running serving host at its next manifest; every write is audited."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

import kreg.ops
from integration.factories import KEY, TRITON_36, make_artifact
from kreg.client import Client
from kreg.credentials import Credentials
from kreg.errors import PermissionDenied
from kreg.model import Capability, Runtime, WorkerInfo
from registry.audit import AuditLog
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig


def test_a_retracted_kernel_is_dropped_at_the_next_manifest(server) -> None:  # type: ignore[no-untyped-def]
    artifact, blobs = make_artifact()
    with Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36), credentials=Credentials()) as client:
        published = client.publish(artifact, blobs)
        provider = kreg.ops.configure(client, model=KEY.model, platform=KEY.platform, arch=KEY.arch)
        try:
            (before,) = provider.preload([KEY.operator])
            (kept,) = provider.preload([KEY.operator])  # nothing changed: the entry is kept
            client.retract(published.artifact_id, "wrong results on empty bags")
            (after,) = provider.preload([KEY.operator])
        finally:
            kreg.ops.reset()
    assert before.artifact_id == kept.artifact_id == published.artifact_id and before.reason == kept.reason
    assert after.path == "reference" and "retracted: wrong results on empty bags" in after.reason


def test_every_write_is_audited_with_who_what_and_when(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"worker {'w' * 20} gpu-pool\nadmin {'a' * 20} ops-oncall\n")
    data = tmp_path / "data"
    artifact, blobs = make_artifact()
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    with EmbeddedRegistry(ServerConfig(data_dir=data, listen="127.0.0.1:0", auth_file=tokens)) as server:
        worker = Client(server.address, timeout_s=5, credentials=Credentials(token="w" * 20))
        admin = Client(server.address, timeout_s=5, credentials=Credentials(token="a" * 20))
        with worker, admin:
            published = worker.publish(artifact, blobs)
            worker.get_kernel(KEY)  # a read: not audited
            with pytest.raises(PermissionDenied):
                worker.retract(published.artifact_id, "not mine to pull")
            admin.retract(published.artifact_id, "wrong results")
            (job,) = worker.request_generation([KEY.with_model("audit")])
            leased = worker.lease_job(WorkerInfo("w1", (Capability("*", "*"),)), wait_s=0, lease_s=10)
            assert leased is not None and worker.lease_job(WorkerInfo("w1", (Capability("*", "*"),)), wait_s=0, lease_s=10) is None
    lines = [json.loads(line) for line in (data / AuditLog.FILE_NAME).read_text().splitlines()]
    assert [(e["who"], e["method"], e["outcome"]) for e in lines] == [
        ("gpu-pool", "PublishKernel", "OK"),
        ("gpu-pool", "RetractKernel", "PERMISSION_DENIED"),
        ("ops-oncall", "RetractKernel", "OK"),
        ("gpu-pool", "RequestGeneration", "OK"),
        ("gpu-pool", "LeaseJob", "OK"),  # the second, empty lease poll changed nothing
    ]
    assert lines[0]["artifact_id"] == published.artifact_id and lines[0]["key"] == str(KEY)
    assert lines[2]["reason"] == "wrong results" and lines[2]["artifact_id"] == published.artifact_id
    assert lines[3]["keys"] == [str(KEY.with_model("audit"))] and lines[4]["job_id"] == job.job_id
    for entry in lines:
        at = datetime.datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        assert started <= at <= datetime.datetime.now(datetime.timezone.utc)
        assert entry["peer"].startswith("ipv")
