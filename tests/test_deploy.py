"""The deployment files say what the code does: every manifest parses, every kreg command line
in them is one the CLI accepts, ports and probes line up, every Ray worker group is placed on
a target the generator knows, every file a Dockerfile or the compose file names exists, and
Prometheus, Grafana and the compose file agree on names. (No cluster or Docker engine runs
here; these are the checks that catch a file gone stale. The dashboard's queries are run
against a real Prometheus in tests/integration/test_prometheus.py.)"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.fleet import node_accelerators
from generator.hardware import record_for
from kreg.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
DOCKERFILES = sorted(ROOT.glob("Dockerfile*"))
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
NAMESPACED = {"Service", "StatefulSet", "Deployment", "RayJob"}


def _documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] in ("StatefulSet", "Deployment"):
        yield doc["spec"]["template"]["spec"]
    if doc["kind"] == "RayJob":
        cluster = doc["spec"]["rayClusterSpec"]
        yield cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster["workerGroupSpecs"]:
            yield group["template"]["spec"]


def _kreg_command_lines() -> Iterator[tuple[str, list[str]]]:
    for path, doc in _documents():
        for pod in _pod_specs(doc):
            for c in pod["containers"]:
                if c.get("command") == ["kreg"]:
                    yield f"{path.name}:{doc['metadata']['name']}/{c['name']}", c["args"]
        if doc["kind"] == "RayJob":
            words = shlex.split(doc["spec"]["entrypoint"])
            assert words[0] == "kreg"
            yield f"{path.name}:{doc['metadata']['name']} entrypoint", words[1:]


def test_there_are_manifests_for_the_registry_workers_and_a_ray_fleet() -> None:
    kinds = {(p.name, d["kind"]) for p, d in _documents()}
    assert {("registry.yaml", "StatefulSet"), ("registry.yaml", "Service"), ("workers.yaml", "Deployment"), ("kuberay-fleet.yaml", "RayJob")} <= kinds


def test_every_document_is_a_named_kubernetes_object() -> None:
    for path, doc in _documents():
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
        assert doc["metadata"].get("name"), path
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"].get("namespace") == "kreg", f"{path}: {doc['kind']} {doc['metadata']['name']}"


def test_every_kreg_command_line_parses_with_the_cli() -> None:
    lines = list(_kreg_command_lines())
    assert {args[args.index(v)] for _, args in lines for v in ("serve", "worker", "fleet") if v in args} == {"serve", "worker", "fleet"}
    for where, args in lines:
        try:
            build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: `kreg {' '.join(args)}` is not a valid command line")


def test_the_registry_listens_where_its_service_and_probes_point() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _documents()}
    pod = docs[("StatefulSet", "kreg-registry")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["command"][1:] + container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(args.listen.rpartition(":")[2]) == ports["grpc"] and args.metrics_port == ports["metrics"]
    assert args.workers == 0 and args.data == container["volumeMounts"][0]["mountPath"]
    assert container["readinessProbe"]["grpc"]["port"] == ports["grpc"]
    service = docs[("Service", "kreg-registry")]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports.keys()
    # SIGTERM drains for --grace seconds: the pod must be given longer than that.
    assert pod["terminationGracePeriodSeconds"] > args.grace


def test_worker_deployments_serve_known_targets_with_their_gpu() -> None:
    for _, doc in _documents():
        if doc["kind"] != "Deployment":
            continue
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        args = build_parser().parse_args(container["args"])
        (serve,) = args.serve
        platform, arch = serve.split("/")
        assert record_for(platform, arch).platform == platform
        assert doc["spec"]["template"]["metadata"]["labels"]["kreg.io/arch"] == arch
        assert any(k.endswith("/gpu") for k in container["resources"]["limits"])


def test_each_ray_worker_group_is_placed_on_a_known_target() -> None:
    (job,) = [d for _, d in _documents() if d["kind"] == "RayJob"]
    cluster = job["spec"]["rayClusterSpec"]
    head = {"NodeID": "0" * 56, "Alive": True, "Labels": cluster["headGroupSpec"].get("labels", {}), "Resources": {"CPU": 2.0}}
    assert node_accelerators(head) == []  # the head runs the fleet's driver, no worker
    for group in cluster["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        limits = container["resources"].get("limits", {})
        gpus = float(group["rayStartParams"].get("num-gpus", limits.get("nvidia.com/gpu", 0)))
        node = {"NodeID": "1" * 56, "Alive": True, "Labels": group["labels"], "Resources": {"CPU": 8.0, **({"GPU": gpus} if gpus else {})}}
        found = node_accelerators(node)
        assert found, group["groupName"]
        for accelerator in found:
            assert record_for(accelerator.platform, accelerator.arch).platform == accelerator.platform


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_file_a_dockerfile_copies_exists(dockerfile: Path) -> None:
    copies = [line.split()[1:-1] for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such file"


def test_compose_builds_from_files_that_exist_and_runs_valid_command_lines() -> None:
    services = COMPOSE["services"]
    assert {"registry", "worker", "prometheus", "grafana"} <= services.keys()
    for name, service in services.items():
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: volume {source}: no such file"
    build_parser().parse_args(services["worker"]["command"])  # the worker image's entrypoint is kreg


def test_prometheus_scrapes_the_ports_the_services_serve_metrics_on() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}
    entrypoint = json.loads((ROOT / "Dockerfile").read_text().split("ENTRYPOINT", 1)[1].strip().splitlines()[0])
    registry_args = build_parser().parse_args(entrypoint[1:])
    worker_args = build_parser().parse_args(COMPOSE["services"]["worker"]["command"])
    assert targets == {"kreg-registry": f"registry:{registry_args.metrics_port}", "kreg-worker": f"worker:{worker_args.metrics_port}"}
    promtool = shutil.which("promtool")
    if promtool is not None:  # Debian's prometheus package brings it (scripts/test.sh installs that)
        checked = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_provisions_the_dashboard_and_the_datasource_its_panels_name() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "kreg.json").read_text())
    assert dashboard["uid"] == "kreg-overview"  # stable: links and alerts point at it
    (datasource,) = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())["datasources"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(t["datasource"]["uid"] == datasource["uid"] for p in panels for t in p["targets"])
    (provider,) = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "kreg.yaml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]


def test_the_registry_image_installs_no_torch_or_triton() -> None:
    import tomllib

    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("RUN pip install")]
    assert installs == ["RUN pip install --no-cache-dir ."]  # the core dependencies alone, no extras
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if d.split(">")[0].split("=")[0].strip() in ("torch", "triton", "ray")]
