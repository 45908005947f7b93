"""Every acknowledged write survives the writer being SIGKILLed mid-load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kreg.model import JobState
from store_helpers import KEY, T0, open_store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ACKS_BEFORE_KILL = 600


def test_acknowledged_writes_survive_sigkill_and_the_store_reopens(tmp_path: Path) -> None:
    path = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "clients/python"), str(REPO)])}
    writer = subprocess.Popen(
        [sys.executable, str(HERE / "store_crash_writer.py"), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert writer.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            line = writer.stdout.readline()
            assert line, f"writer exited early: {writer.communicate()[1]}"
            acked.append(line)
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL
    # Lines the writer flushed before it died were acknowledged too; a torn last line was not.
    acked += [line for line in out.splitlines(keepends=True) if line.endswith("\n")]
    records = [line.split() for line in acked]

    with open_store(path) as store:
        for kind, record_id in records:
            if kind == "blob":
                assert store.blob_digest(record_id) is not None
                store.get_blob(record_id)  # re-verifies the digest
            elif kind == "artifact":
                stored = store.get_artifact(record_id)
                assert stored in store.variants(stored.key)
                for digest in stored.digests():
                    assert len(store.get_blob(digest.sha256)) == digest.size_bytes
            else:
                job = store.get_job(record_id)
                assert job.state is JobState.QUEUED and store.latest_job(job.key) == job
        counts = {kind: sum(r[0] == kind for r in records) for kind in ("blob", "artifact", "job")}
        assert min(counts.values()) >= ACKS_BEFORE_KILL // 3 - 1

        job, created = store.enqueue(KEY, now=T0)
        assert created and store.get_job(job.job_id) == job
        assert store.get_blob(store.put_blob(b"after the crash").sha256) == b"after the crash"
