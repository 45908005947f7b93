"""Prometheus metrics of the registry (the full set is issue 8's; these are the core counters)."""

from __future__ import annotations

from prometheus_client import Counter

from kreg.model import ResolutionKind

RESOLUTIONS = Counter("kreg_resolutions_total", "Kernel resolutions answered, by kind.", ["kind"])
# Each kind's child bound once: labels() per resolution cost more than the rest of a cached one.
RESOLVED = {kind: RESOLUTIONS.labels(kind.name.lower()) for kind in ResolutionKind}
JOBS_QUEUED = Counter("kreg_jobs_queued_total", "Generation jobs queued or merged.")
BLOB_BYTES_SERVED = Counter("kreg_blob_bytes_served_total", "Blob bytes streamed by FetchBlob.")
