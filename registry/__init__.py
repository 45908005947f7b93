"""The Kernel Registry server: gRPC service, LMDB store, auth and metrics.

Imports `kreg` (contract and domain model) and never torch, triton or `generator`, so the
server image stays small and its hot path free of them.
"""
