"""Writer for test_store_crash: publishes and enqueues in a loop until killed.

Prints one line per committed write, flushed after the Store call returned:
    blob <sha256> | artifact <artifact_id> | job <job_id>
Usage: python store_crash_writer.py STORE_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kreg.keys import KernelKey
from store_helpers import T0, artifact

from registry.store import Store


def main(path: Path) -> None:
    # A small map makes the load grow it several times; synced commits as in production.
    with Store.open(path, map_size=256 << 10) as store:
        for i in range(1_000_000):
            digest = store.put_blob(os.urandom(1024 * (1 + i % 64)))
            print("blob", digest.sha256, flush=True)
            key = KernelKey.parse(f"nvidia/sm_90/dlrm-v2/op_{i}@1")
            art, blobs = artifact(key, seed=str(i))
            print("artifact", store.publish(art, blobs, now=T0 + i).artifact_id, flush=True)
            job, _ = store.enqueue(key, priority=i % 7, now=T0 + i)
            print("job", job.job_id, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
