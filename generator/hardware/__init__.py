"""Hardware knowledge base: one sourced record per exact arch.

The generator prunes configs against these limits, computes roofline fractions against these
peaks, and hands the records to proposers as retrieval context. Records are keyed by exact
arch, never by family, for the same reason keys are (kreg.keys).
"""

from __future__ import annotations

from generator.hardware.model import DTYPES, CompileTarget, HardwareRecord
from generator.hardware.records import RECORDS

__all__ = ["DTYPES", "RECORDS", "CompileTarget", "HardwareRecord", "record_for"]


def record_for(platform: str, arch: str) -> HardwareRecord:
    """The record for (platform, arch); ValueError naming every known pair when there is none."""
    record = RECORDS.get(arch)
    if record is None or record.platform != platform:
        known = ", ".join(f"{r.platform}/{r.arch}" for r in RECORDS.values())
        raise ValueError(f"no hardware record for {platform!r}/{arch!r}: known are {known}")
    return record
