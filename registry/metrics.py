"""Prometheus metrics of the registry (the full set is issue 8's; these are the core counters)."""

from __future__ import annotations

from prometheus_client import Counter

RESOLUTIONS = Counter("kreg_resolutions_total", "Kernel resolutions answered, by kind.", ["kind"])
JOBS_QUEUED = Counter("kreg_jobs_queued_total", "Generation jobs queued or merged.")
BLOB_BYTES_SERVED = Counter("kreg_blob_bytes_served_total", "Blob bytes streamed by FetchBlob.")
