"""Op-level API: dispatch to the served kernel or fall back to the PyTorch reference.

`kreg.ops.reference` holds the exact PyTorch references (the correctness oracle and the
fallback). It imports torch, so import it only where a reference runs; this package itself
imports nothing heavy.
"""
