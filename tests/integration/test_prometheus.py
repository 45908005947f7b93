"""A real Prometheus (Debian's package, installed by scripts/test.sh) scrapes a live `kreg serve`
and a live `kreg worker` after real traffic, with the committed deploy/prometheus/prometheus.yml
(its targets pointed here); then every query of the committed Grafana dashboard is evaluated
through Prometheus's HTTP API and each must return data."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kreg.client import Client
from kreg.errors import NotFound
from kreg.keys import KernelKey
from kreg.model import JobState, ResolutionKind, Runtime

from integration.factories import KEY, TRITON_36, make_artifact

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "kreg.json"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GENERATED_KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/sigrid_hash@1{dtype=int64}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def _wait(what: str, check, timeout_s: float = 300.0, logs: tuple[Path, ...] = ()):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
            pytest.fail(f"{what}: not within {timeout_s:.0f}s\n{tails}")
        time.sleep(0.5)
    return got


def _expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("no prometheus binary: scripts/test.sh installs Debian's package (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prom")
    grpc_port, registry_metrics, worker_metrics, prom_port = (_free_port() for _ in range(4))
    address = f"127.0.0.1:{grpc_port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: tmp / f"{name}.log" for name in ("registry", "worker", "prometheus")}

    def start(name: str, cmd: list[str]) -> None:
        with open(logs[name], "wb") as out:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))

    kreg = [sys.executable, "-m", "kreg.cli", "--registry", address]
    start("registry", kreg + ["serve", "--data", str(tmp / "data"), "--listen", address, "--workers", "0", "--metrics-port", str(registry_metrics)])
    start("worker", kreg + ["worker", "--no-device", "--serve", "nvidia/sm_90", "--max-candidates", "1", "--metrics-port", str(worker_metrics)])
    # The committed config, scraping here every second.
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"]["scrape_interval"] = "1s"
    targets = {"kreg-registry": f"127.0.0.1:{registry_metrics}", "kreg-worker": f"127.0.0.1:{worker_metrics}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    start("prometheus", [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{prom_port}"])
    try:
        yield {"address": address, "prometheus": f"http://127.0.0.1:{prom_port}", "logs": tuple(logs.values())}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    reply = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def test_every_dashboard_query_returns_data_after_real_traffic(stack: dict[str, Any]) -> None:
    base, logs = stack["prometheus"], stack["logs"]
    # Traffic only once both are scraped: a rate needs the counter to move between two scrapes.
    _wait("both targets up", lambda: _prometheus_up(base) and len(_query(base, "up == 1")) == 2, logs=logs)
    with Client(stack["address"], timeout_s=10, runtime=Runtime(TRITON_36)) as client:
        # A published, timed kernel (its evidence is what the served-kernel panels show).
        artifact, blobs = make_artifact(KEY)
        shapes = tuple(replace(s, bandwidth_fraction=0.62) for s in artifact.measurements.shapes)
        stored = client.publish(replace(artifact, measurements=replace(artifact.measurements, shapes=shapes)), blobs)
        assert client.get_kernel(KEY).kind is ResolutionKind.BINARY
        client.fetch_blob(stored.kernels[0].binary)
        # A miss the worker generates (interpreted: this host has no GPU).
        miss = client.get_kernel(GENERATED_KEY)
        assert miss.kind is ResolutionKind.REFERENCE and miss.job_id
        client.get_manifest("nvidia", "sm_90", "dlrm-v2", [KEY.operator, GENERATED_KEY.operator])
        with pytest.raises(NotFound):
            client.get_job("no-such-job")
        _wait("the worker's job", lambda: client.get_job(miss.job_id)[0].state is JobState.SUCCEEDED, logs=logs)
        client.list_workers()
    _wait("the worker's job in Prometheus", lambda: _query(base, 'kreg_worker_jobs_total{outcome="published"} > 0'), logs=logs)
    time.sleep(3)
    empty = []
    for title, expr in _expressions():
        result = _query(base, expr)
        values = [float(r["value"][1]) for r in result]
        if not any(v == v for v in values):  # no series, or NaN only (e.g. a quantile of nothing)
            empty.append(f"{title}: {expr} -> {result}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def _prometheus_up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False
