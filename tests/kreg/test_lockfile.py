"""Lockfile: a pinned manifest survives the disk, and a bad file says which and why."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from kreg.errors import InvalidArgument
from kreg.keys import KernelKey, OperatorSpec
from kreg.lockfile import FORMAT, Lockfile
from kreg.model import Resolution, ResolutionKind, Toolchain

PLATFORM, ARCH, MODEL = "nvidia", "sm_90", "dlrm-v2"


def _key(op: str, model: str = MODEL) -> KernelKey:
    return KernelKey(PLATFORM, ARCH, model, OperatorSpec.parse(op))


@pytest.fixture
def lock(resolution_factory: Callable[..., Resolution]) -> Lockfile:
    binary = resolution_factory(_key("jagged_sum@1{D=128,dtype=bf16}"), "a")
    source = Resolution(
        _key("jagged_softmax@2{dtype=bf16}"),
        ResolutionKind.SOURCE,
        "no binary for triton 3.6.0; portable source",
        resolution_factory(_key("jagged_softmax@2{dtype=bf16}"), "b").artifact,
    )
    reference = Resolution(
        _key("hstu_attention@1"), ResolutionKind.REFERENCE, "no variant yet; job queued", job_id="job-3"
    )
    shared = resolution_factory(_key("layer_norm@1{dtype=bf16}", model="*"), "c")
    return Lockfile(
        PLATFORM, ARCH, MODEL, Toolchain("3.6.0", "cuda"), 1700000000.5, (binary, source, reference, shared)
    )


def test_save_then_load_gives_back_the_lockfile(tmp_path: Path, lock: Lockfile) -> None:
    path = tmp_path / "kreg.lock"
    lock.save(path)
    assert Lockfile.load(path) == lock
    assert json.loads(path.read_text())["format"] == FORMAT == "kreg-lock/1"


def test_a_lockfile_without_toolchain_or_resolutions_round_trips(tmp_path: Path) -> None:
    empty = Lockfile("cpu", "x86_64", "*", None, 0.0, ())
    empty.save(tmp_path / "kreg.lock")
    assert Lockfile.load(tmp_path / "kreg.lock") == empty


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path, lock: Lockfile) -> None:
    path = tmp_path / "kreg.lock"
    Lockfile(PLATFORM, ARCH, MODEL, None, 1.0, ()).save(path)
    lock.save(path)
    assert Lockfile.load(path) == lock
    assert os.listdir(tmp_path) == ["kreg.lock"]


def test_a_failed_save_keeps_the_old_lockfile(
    tmp_path: Path, lock: Lockfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kreg.lock"
    old = Lockfile(PLATFORM, ARCH, MODEL, None, 1.0, ())
    old.save(path)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        lock.save(path)
    monkeypatch.undo()
    assert Lockfile.load(path) == old
    assert os.listdir(tmp_path) == ["kreg.lock"]


def test_the_file_is_readable_json_with_canonical_keys(tmp_path: Path, lock: Lockfile) -> None:
    path = tmp_path / "kreg.lock"
    lock.save(path)
    text = path.read_text()
    assert text.endswith("\n") and "\n  " in text  # indented: diffs well in a repository
    doc = json.loads(text)
    assert doc["resolutions"][0]["key"] == "nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}"
    assert doc["resolutions"][0]["kind"] == "BINARY"


# ------------------------------------------------------------------ load errors


def _load_error(path: Path) -> str:
    with pytest.raises(InvalidArgument) as excinfo:
        Lockfile.load(path)
    message = str(excinfo.value)
    assert str(path) in message
    return message


def test_loading_a_missing_file_names_it(tmp_path: Path) -> None:
    assert "does not exist" in _load_error(tmp_path / "nope.lock")


def test_loading_a_directory_names_it(tmp_path: Path) -> None:
    assert "cannot be read" in _load_error(tmp_path)


@pytest.mark.parametrize("text", ["", "{", "not json", '{"format": "kreg-lock/1",}'])
def test_loading_bad_json_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kreg.lock"
    path.write_text(text)
    assert "not valid JSON" in _load_error(path)


def test_loading_non_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kreg.lock"
    path.write_bytes(b"\xff\xfe{}")
    assert "cannot be read" in _load_error(path)


@pytest.mark.parametrize("doc", [[], "kreg-lock/1", 3])
def test_loading_json_that_is_not_an_object_names_the_file(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "kreg.lock"
    path.write_text(json.dumps(doc))
    assert "not a JSON object" in _load_error(path)


@pytest.mark.parametrize("fmt", ["kreg-lock/2", "kreg-lock/0", "", None, 1])
def test_loading_another_format_version_says_which(tmp_path: Path, lock: Lockfile, fmt: object) -> None:
    path = tmp_path / "kreg.lock"
    lock.save(path)
    doc = json.loads(path.read_text())
    doc["format"] = fmt
    path.write_text(json.dumps(doc))
    message = _load_error(path)
    assert repr(fmt) in message and repr(FORMAT) in message


def test_loading_a_file_without_format_is_refused(tmp_path: Path, lock: Lockfile) -> None:
    path = tmp_path / "kreg.lock"
    lock.save(path)
    doc = json.loads(path.read_text())
    del doc["format"]
    path.write_text(json.dumps(doc))
    assert "None" in _load_error(path)


def test_loading_a_file_missing_fields_lists_them(tmp_path: Path) -> None:
    path = tmp_path / "kreg.lock"
    path.write_text(json.dumps({"format": FORMAT, "platform": "nvidia", "arch": "sm_90"}))
    message = _load_error(path)
    assert "model" in message and "resolutions" in message and "created_at" in message


@pytest.mark.parametrize(
    "mutate",
    [
        lambda doc: doc["resolutions"][0].update(key="nvidia/hopper/dlrm-v2/op@1"),
        lambda doc: doc["resolutions"][0].update(kind="SOMETIMES"),
        lambda doc: doc["resolutions"][0].update(key="amd/gfx942/dlrm-v2/op@1"),
        lambda doc: doc["resolutions"].append(doc["resolutions"][0]),
        lambda doc: doc.update(resolutions=[7]),
    ],
    ids=["bad-arch", "bad-enum", "foreign-key", "duplicate", "not-an-object"],
)
def test_loading_malformed_content_names_the_file(
    tmp_path: Path, lock: Lockfile, mutate: Callable[[dict[str, Any]], None]
) -> None:
    path = tmp_path / "kreg.lock"
    lock.save(path)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    assert "malformed" in _load_error(path)


# ------------------------------------------------------------------ lookup and digests


def test_lookup_finds_each_pinned_key(lock: Lockfile) -> None:
    for resolution in lock.resolutions:
        assert lock.lookup(resolution.key) is resolution


def test_lookup_ignores_param_order_in_the_asked_key(lock: Lockfile) -> None:
    asked = KernelKey(PLATFORM, ARCH, MODEL, OperatorSpec("jagged_sum", 1, {"dtype": "bf16", "D": "128"}))
    found = lock.lookup(asked)
    assert found is not None and found.kind is ResolutionKind.BINARY


def test_lookup_falls_back_to_a_model_agnostic_pin(lock: Lockfile) -> None:
    found = lock.lookup(_key("layer_norm@1{dtype=bf16}"))
    assert found is not None and found.key.model == "*"


@pytest.mark.parametrize(
    "asked",
    [
        _key("jagged_sum@1{D=64,dtype=bf16}"),  # other specialization
        _key("jagged_sum@2{D=128,dtype=bf16}"),  # other version
        _key("jagged_sum@1{D=128,dtype=bf16}", model="hstu-ranker"),  # other model
        KernelKey(
            "nvidia", "sm_100", MODEL, OperatorSpec.parse("jagged_sum@1{D=128,dtype=bf16}")
        ),  # other arch
    ],
    ids=str,
)
def test_lookup_of_an_unpinned_key_is_none(lock: Lockfile, asked: KernelKey) -> None:
    assert lock.lookup(asked) is None


def test_digests_cover_every_blob_of_every_pinned_artifact(lock: Lockfile) -> None:
    expected = {
        d for r in lock.resolutions if r.artifact is not None for k in r.artifact.kernels for d in k.digests()
    }
    assert lock.digests() == expected
    # 3 artifacts: count kernel (binary, metadata, source) + scatter kernel (binary, source) each
    assert len(lock.digests()) == 3 * 5


def test_a_lockfile_refuses_keys_of_another_host_kind(resolution_factory: Callable[..., Resolution]) -> None:
    foreign = resolution_factory(KernelKey("amd", "gfx942", MODEL, OperatorSpec.parse("op@1")))
    with pytest.raises(InvalidArgument, match="gfx942"):
        Lockfile(PLATFORM, ARCH, MODEL, None, 0.0, (foreign,))
    other_model = resolution_factory(_key("op@1", model="hstu-ranker"))
    with pytest.raises(InvalidArgument, match="hstu-ranker"):
        Lockfile(PLATFORM, ARCH, MODEL, None, 0.0, (other_model,))


def test_a_lockfile_refuses_a_key_pinned_twice(resolution_factory: Callable[..., Resolution]) -> None:
    pinned = resolution_factory(_key("op@1"))
    with pytest.raises(InvalidArgument, match="twice"):
        Lockfile(PLATFORM, ARCH, MODEL, None, 0.0, (pinned, pinned))
