"""Where `kreg fleet` puts workers: a node's accelerators, read from entries shaped as
ray.nodes() returns them (the Ray cluster itself is exercised in test_ray_fleet)."""

from __future__ import annotations

import pytest

from generator.fleet import RAY_ACCELERATOR_TYPES, Accelerator, node_accelerators, worker_id_for
from generator.hardware import record_for


def _node(labels: dict[str, str] | None = None, alive: bool = True, **resources: float) -> dict[str, object]:
    return {"NodeID": "ab" * 28, "Alive": alive, "Labels": labels or {}, "Resources": {"CPU": 8.0, **resources}}


def test_labels_name_the_accelerator_one_worker_per_gpu() -> None:
    node = _node({"kreg.io/platform": "nvidia", "kreg.io/arch": "sm_90"}, GPU=8.0, **{"accelerator_type:H100": 1.0})
    found = node_accelerators(node)
    assert [(a.platform, a.arch, a.index, a.gpu) for a in found] == [("nvidia", "sm_90", i, True) for i in range(8)]


def test_labels_win_over_rays_accelerator_type() -> None:
    node = _node({"kreg.io/platform": "nvidia", "kreg.io/arch": "sm_100"}, GPU=1.0, **{"accelerator_type:H100": 1.0})
    assert [(a.platform, a.arch) for a in node_accelerators(node)] == [("nvidia", "sm_100")]


def test_a_cpu_node_labelled_as_a_target_gets_its_workers_count() -> None:
    node = _node({"kreg.io/platform": "amd", "kreg.io/arch": "gfx942", "kreg.io/workers": "3"})
    assert [(a.platform, a.arch, a.index, a.gpu) for a in node_accelerators(node)] == [("amd", "gfx942", i, False) for i in range(3)]
    assert len(node_accelerators(_node({"kreg.io/platform": "amd", "kreg.io/arch": "gfx942"}))) == 1


@pytest.mark.parametrize(
    ("labels", "resources", "want"),
    [
        ({}, {"GPU": 2.0, "accelerator_type:A100": 1.0}, ("nvidia", "sm_80")),
        ({"ray.io/accelerator-type": "H200"}, {"GPU": 2.0}, ("nvidia", "sm_90")),
        ({}, {"GPU": 1.0, "accelerator_type:AMD-Instinct-MI300X-OAM": 1.0}, ("amd", "gfx942")),
    ],
)
def test_an_unlabelled_gpu_node_is_placed_by_rays_accelerator_type(labels, resources, want) -> None:  # type: ignore[no-untyped-def]
    found = node_accelerators(_node(labels, **resources))
    assert {(a.platform, a.arch) for a in found} == {want} and len(found) == int(resources["GPU"])


def test_nodes_without_a_known_accelerator_get_no_worker(caplog: pytest.LogCaptureFixture) -> None:
    assert node_accelerators(_node()) == []  # a plain CPU node (the head, say)
    assert node_accelerators(_node({"kreg.io/platform": "nvidia", "kreg.io/arch": "sm_90"}, alive=False)) == []
    assert node_accelerators(_node(GPU=4.0, **{"accelerator_type:T4": 1.0})) == []
    assert "T4" in caplog.text and "kreg.io/platform" in caplog.text


@pytest.mark.parametrize(
    "labels",
    [{"kreg.io/platform": "nvidia"}, {"kreg.io/arch": "sm_90"}, {"kreg.io/platform": "amd", "kreg.io/arch": "gfx942", "kreg.io/workers": "two"}],
)
def test_contradictory_labels_are_an_error(labels: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="node abababababab"):
        node_accelerators(_node(labels))


def test_every_mapped_ray_type_has_a_hardware_record() -> None:
    for platform, arch in RAY_ACCELERATOR_TYPES.values():
        assert record_for(platform, arch).platform == platform


def test_worker_ids_say_where_the_worker_runs() -> None:
    accelerator = Accelerator("cd" * 28, "nvidia", "sm_90", 3, gpu=True)
    worker_id = worker_id_for(accelerator, 4242)
    assert worker_id.startswith("ray:cdcdcdcdcdcd/nvidia/sm_90/3:") and worker_id.endswith(":4242")
