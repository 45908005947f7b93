"""The hardware knowledge base: complete, sourced, and of the right order of magnitude."""

from __future__ import annotations

import dataclasses

import pytest
from kreg.keys import KernelKey

from generator.hardware import DTYPES, RECORDS, HardwareRecord, record_for

GPU_RECORDS = [r for r in RECORDS.values() if r.platform != "cpu"]
WARP_SIZES = {"nvidia": 32, "amd": 64, "cpu": 1}
BACKENDS = {"nvidia": "cuda", "amd": "hip", "cpu": "cpu"}


def test_the_brief_archs_are_all_there() -> None:
    assert set(RECORDS) == {"sm_80", "sm_90", "sm_100", "gfx90a", "gfx942", "x86_64"}


@pytest.mark.parametrize("record", RECORDS.values(), ids=lambda r: r.arch)
def test_record_is_complete_and_sourced(record: HardwareRecord) -> None:
    for f in dataclasses.fields(record):
        assert getattr(record, f.name) is not None or f.name == "compile_target", f.name
    assert record.name and record.sources
    assert all(isinstance(s, str) and len(s) > 20 for s in record.sources)
    assert RECORDS[record.arch] is record
    # The arch must be one a kernel key accepts, or no key could ever select this record.
    assert KernelKey.parse(f"{record.platform}/{record.arch}/*/probe@1").arch == record.arch
    assert record.warp_size == WARP_SIZES[record.platform]
    assert record.triton_backend == BACKENDS[record.platform]
    assert set(record.peak_flops) <= set(DTYPES)
    assert record.target.arch == record.arch and record.target.backend == record.triton_backend


@pytest.mark.parametrize("record", GPU_RECORDS, ids=lambda r: r.arch)
def test_compile_target_matches_the_record(record: HardwareRecord) -> None:
    ct = record.compile_target
    assert ct is not None
    assert (ct.backend, ct.warp_size) == (record.triton_backend, record.warp_size)
    expected_arch = int(record.arch.removeprefix("sm_")) if record.platform == "nvidia" else record.arch
    assert ct.arch == expected_arch


@pytest.mark.parametrize("record", GPU_RECORDS, ids=lambda r: r.arch)
def test_gpu_numbers_are_plausible(record: HardwareRecord) -> None:
    """Order-of-magnitude bounds: they catch unit slips (GB for TB, KiB for bytes), not typos."""
    assert 50 <= record.sm_count <= 400
    assert 48 * 1024 <= record.max_shared_memory_bytes <= 256 * 1024
    assert record.registers_per_sm in (65_536, 131_072)
    assert 4 << 20 <= record.l2_bytes <= 256 << 20
    assert 1e12 <= record.memory_bandwidth_bytes_s <= 2e13
    flops = record.peak_flops
    assert 1e13 <= flops["fp32"] <= 3e14
    assert flops["fp16"] == flops["bf16"]
    assert flops["fp32"] < flops["fp16"] <= 1e16
    assert flops["int8"] >= flops["fp16"]
    if "tf32" in flops:
        assert flops["fp32"] < flops["tf32"] < flops["fp16"]
    if "fp8" in flops:
        assert flops["fp8"] == pytest.approx(2 * flops["fp16"], rel=1e-3)
    # Ridge point of the fp16 roofline: every GPU here needs tens to hundreds of FLOP per byte.
    assert 50 <= flops["fp16"] / record.memory_bandwidth_bytes_s <= 1000


def test_cpu_record_says_what_is_unknown() -> None:
    cpu = record_for("cpu", "x86_64")
    assert cpu.compile_target is None
    assert cpu.sm_count == 0 and cpu.memory_bandwidth_bytes_s == 0 and not cpu.peak_flops
    assert "measured" in cpu.notes


def test_record_for_finds_by_platform_and_arch() -> None:
    assert record_for("nvidia", "sm_90").name.startswith("NVIDIA H100")
    assert record_for("amd", "gfx942").sm_count == 304


@pytest.mark.parametrize(("platform", "arch"), [("nvidia", "sm_89"), ("amd", "sm_90"), ("nvidia", "hopper")])
def test_record_for_unknown_lists_the_known(platform: str, arch: str) -> None:
    with pytest.raises(ValueError, match=rf"'{platform}'/'{arch}'.*nvidia/sm_90.*amd/gfx942"):
        record_for(platform, arch)
