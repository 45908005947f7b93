"""The registry's LMDB store: content-addressed blobs, artifacts per key, the job queue.

`Store` is the whole surface; the modules beside it each own one part of the layout
(env: environment and transactions, blobs, kernels, jobs, paging).
"""

from registry.store.env import SchemaVersionError
from registry.store.store import JobCompletion, KeyState, Store, StoreStats

__all__ = ["JobCompletion", "KeyState", "SchemaVersionError", "Store", "StoreStats"]
