"""Artifacts: publish needs its blobs, is idempotent, retracts, lists in pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kreg import serde
from kreg.errors import InvalidArgument, NotFound
from kreg.keys import KernelKey
from kreg.model import ArtifactState, Digest
from store_helpers import KEY, T0, artifact, blob, open_store

from registry.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as s:
        yield s


def test_publish_assigns_content_id_time_and_active_state(store: Store) -> None:
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0)
    assert stored.artifact_id == serde.artifact_content_id(art)
    assert stored.published_at == T0 and stored.state is ArtifactState.ACTIVE
    assert store.get_artifact(stored.artifact_id) == stored
    assert store.variants(KEY) == [stored]
    assert [store.get_blob(b.digest.sha256) for b in blobs] == [b.data for b in blobs]


def test_publish_rejects_an_artifact_whose_blobs_are_missing_and_names_them(store: Store) -> None:
    art, blobs = artifact()
    with pytest.raises(InvalidArgument, match=f"{blobs[1].digest} \\(missing\\)"):
        store.publish(art, blobs[:1], now=T0)
    assert store.variants(KEY) == []
    assert store.blob_digest(blobs[0].digest.sha256) is None, "the failed publish stored nothing"


def test_publish_rejects_a_digest_whose_size_differs_from_the_stored_blob(store: Store) -> None:
    art, blobs = artifact()
    for b in blobs:
        store.put_blob(b.data)
    wrong = Digest(blobs[0].digest.sha256, blobs[0].digest.size_bytes + 1)
    lying = replace(art, kernels=(replace(art.kernels[0], source=wrong),))
    with pytest.raises(InvalidArgument, match="stored blob has"):
        store.publish(lying, [], now=T0)


def test_publish_with_blobs_already_stored_needs_no_blob_data(store: Store) -> None:
    art, blobs = artifact()
    for b in blobs:
        store.put_blob(b.data)
    assert store.publish(art, [], now=T0).state is ArtifactState.ACTIVE


def test_publishing_the_same_content_again_returns_the_stored_artifact(store: Store) -> None:
    art, blobs = artifact()
    first = store.publish(art, blobs, now=T0)
    again = store.publish(replace(art, published_at=99.0, artifact_id="ignored"), blobs, now=T0 + 60)
    assert again == first
    assert store.variants(KEY) == [first]


def test_different_content_is_another_variant_of_the_same_key(store: Store) -> None:
    a, a_blobs = artifact(seed="a")
    b, b_blobs = artifact(seed="b")
    first = store.publish(a, a_blobs, now=T0)
    second = store.publish(b, b_blobs, now=T0 + 1)
    assert store.variants(KEY) == [first, second]
    assert store.variants(KEY.with_model("*")) == []


def test_retract_keeps_the_variant_listed_and_republishing_does_not_revive_it(store: Store) -> None:
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0)
    retracted = store.retract(stored.artifact_id, "wrong results on ragged rows", now=T0 + 1)
    assert retracted.state is ArtifactState.RETRACTED
    assert retracted.retract_reason == "wrong results on ragged rows"
    assert store.variants(KEY) == [retracted]
    assert store.publish(art, blobs, now=T0 + 2) == retracted
    assert store.retract(stored.artifact_id, "another reason", now=T0 + 3) == retracted



def test_retract_records_when_and_a_second_retract_keeps_the_first_time(store: Store) -> None:
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0)
    assert stored.retracted_at == 0.0
    retracted = store.retract(stored.artifact_id, "wrong results on ragged rows", now=T0 + 1)
    assert retracted.retracted_at == T0 + 1 and store.get_artifact(stored.artifact_id) == retracted
    assert store.retract(stored.artifact_id, "again", now=T0 + 5).retracted_at == T0 + 1


def test_retract_needs_a_reason_and_an_existing_artifact(store: Store) -> None:
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0)
    with pytest.raises(InvalidArgument, match="reason"):
        store.retract(stored.artifact_id, "", now=T0)
    with pytest.raises(NotFound):
        store.retract("0" * 64, "bad", now=T0)


@pytest.mark.parametrize("artifact_id", ["", "nope", "0" * 64, "0" * 600])
def test_get_artifact_of_an_unknown_id_is_not_found(store: Store, artifact_id: str) -> None:
    with pytest.raises(NotFound):
        store.get_artifact(artifact_id)


def _publish_many(store: Store) -> dict[str, KernelKey]:
    """Ten artifacts over two archs, two models and two operators; id -> key."""
    published = {}
    for i in range(10):
        key = KernelKey.parse(
            f"nvidia/{'sm_90' if i % 2 else 'sm_80'}/{'dlrm-v2' if i % 3 else 'hstu'}/"
            f"{'jagged_sum' if i < 5 else 'dense_to_jagged'}@1"
        )
        art, blobs = artifact(key, seed=str(i))
        published[store.publish(art, blobs, now=T0 + i).artifact_id] = key
    return published


def test_list_artifacts_pages_through_everything_once(store: Store) -> None:
    published = _publish_many(store)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page, token = store.list_artifacts(page_size=3, page_token=token)
        seen += [a.artifact_id for a in page]
        pages += 1
        if not token:
            break
    assert pages == 4
    assert seen == sorted(published)


def test_list_artifacts_filters_by_every_key_field(store: Store) -> None:
    published = _publish_many(store)
    page, token = store.list_artifacts(
        arch="sm_90", model="dlrm-v2", operator_name="jagged_sum", page_size=1000
    )
    expected = sorted(
        i
        for i, k in published.items()
        if (k.arch, k.model, k.operator.name) == ("sm_90", "dlrm-v2", "jagged_sum")
    )
    assert [a.artifact_id for a in page] == expected and token == ""
    assert store.list_artifacts(platform="amd")[0] == []


def test_list_artifacts_last_full_page_has_no_next_token(store: Store) -> None:
    _publish_many(store)
    page, token = store.list_artifacts(page_size=10)
    assert len(page) == 10 and token == ""
    page, token = store.list_artifacts(page_size=9)
    assert len(page) == 9 and token != ""


def test_list_artifacts_clamps_page_size_and_rejects_bad_input(store: Store) -> None:
    for i in range(3):
        art, blobs = artifact(seed=str(i))
        store.publish(art, blobs, now=T0)
    assert len(store.list_artifacts(page_size=0)[0]) == 3, "0 means the default page size"
    assert len(store.list_artifacts(page_size=10**9)[0]) == 3
    with pytest.raises(InvalidArgument, match="page_size"):
        store.list_artifacts(page_size=-1)
    with pytest.raises(InvalidArgument, match="page_token"):
        store.list_artifacts(page_token="not/a/token")


def test_blob_shared_by_two_artifacts_is_stored_once(store: Store) -> None:
    shared = blob(b"common source")
    a, a_blobs = artifact(seed="a")
    b, b_blobs = artifact(seed="b")
    a = replace(a, kernels=(replace(a.kernels[0], source=shared.digest),))
    b = replace(b, kernels=(replace(b.kernels[0], source=shared.digest),))
    store.publish(a, [shared, a_blobs[1]], now=T0)
    store.publish(b, [shared, b_blobs[1]], now=T0)
    assert store.stats().blobs == 3
