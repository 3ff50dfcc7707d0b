"""Each service's /metrics, scraped from the running platform and read with prometheus_client's own
parser: the values move as generations go through, and no label names an end user."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.common.metrics import port_file
from tests.conftest import rest_client, running_platform

KEY = "sk_metrics_" + uuid.uuid4().hex
SERVICES = ("generator", "catalog", "storage")
USER = "metrics-user-7f3a"


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    ports = {f"IMAGEGEN_{service.upper()}_METRICS_PORT": "0" for service in SERVICES}
    with running_platform(pg, tmp_path_factory, KEY, **ports) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, KEY)


def scrape(platform, service: str) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    port = int(port_file(platform.log_dir, service).read_text())
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))


def test_counters_and_histograms_move_as_a_generation_goes_through(platform, api):
    before = {service: scrape(platform, service) for service in SERVICES}
    done = api(
        "POST", "/api/images/generations", json={"prompt": "a lake", "user": USER, "width": 64, "height": 64}
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    refused = api("POST", "/api/images/generations", json={"prompt": "a lake", "width": 65})
    assert refused.status_code == 400
    after = {service: scrape(platform, service) for service in SERVICES}

    def moved(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    create = "/imagegen.generator.v1.GeneratorService/CreateGenerationFromBody"
    assert moved("generator", "imagegen_grpc_server_handled_total", method=create, code="OK") == 1
    assert (
        moved("generator", "imagegen_grpc_server_handled_total", method=create, code="INVALID_ARGUMENT") == 1
    )
    assert moved("generator", "imagegen_grpc_server_handling_seconds_count", method=create) == 2
    assert moved("generator", "imagegen_queue_wait_seconds_count", model="procedural") == 1
    assert (
        moved("generator", "imagegen_model_server_seconds_count", model="procedural", outcome="completed")
        == 1
    )
    assert moved("catalog", "imagegen_generations_total", model="procedural", status="completed") == 1
    assert moved("catalog", "imagegen_grpc_server_handled_total", code="OK") >= 2
    assert moved("storage", "imagegen_storage_objects_written_total") == 1
    assert moved("storage", "imagegen_storage_written_bytes_total") == int(
        done.json()["outputImages"][0]["sizeBytes"]
    )
    for samples in after.values():
        assert not [key for key in samples if USER in str(key)], "no label names an end user"


def test_the_queue_and_server_gauges_come_from_the_catalog(platform, api):
    project = api("GET", "/api/caller").json()["projectId"]
    dead = [{"url": "http://127.0.0.1:9", "maxConcurrency": 1}]
    model = api("POST", "/api/models", json={"name": "stuck", "provider": "openai", "servers": dead}).json()
    for _ in range(3):
        answer = api(
            "POST", "/api/images/generations", json={"prompt": "waits", "model": "stuck", "async": True}
        )
        assert answer.status_code == 200
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(platform, "catalog")
        up = value(samples, "imagegen_model_server_up", model="stuck")
        failures = value(samples, "imagegen_model_server_consecutive_failures", model="stuck")
        if (up == 0 and failures >= 3) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (up, failures) == (0, 3), "benched after three failures in a row"
    assert value(samples, "imagegen_queue_jobs", project=project, model="stuck", state="pending") == 3
    assert value(samples, "imagegen_queue_oldest_pending_seconds", model="stuck") > 0
    server = model["servers"][0]["id"]
    labels = (("model", "stuck"), ("project", project), ("server", server))
    assert ("imagegen_model_server_jobs_running", labels) in samples
    assert value(samples, "imagegen_webhook_deliveries_pending") == 0
    for generation in api("GET", "/api/images/generations?model=stuck").json()["results"]:
        api("POST", f"/api/images/generations/{generation['id']}:cancel", json={})
    assert value(scrape(platform, "catalog"), "imagegen_queue_jobs", model="stuck") == 0


def test_each_service_froze_its_startup_objects_and_times_the_collectors_pauses(platform, api):
    # Enough calls that even storage, which allocates least per call, collects its youngest objects.
    for _ in range(30):
        done = api("POST", "/api/images/generations", json={"prompt": "a lake", "width": 64, "height": 64})
        assert done.status_code == 200
    for service in SERVICES:
        samples = scrape(platform, service)
        # Modules, descriptors and pools: tens of thousands of objects a full pass no longer walks.
        assert value(samples, "imagegen_gc_frozen_objects") > 10_000, service
        assert value(samples, "imagegen_gc_pause_seconds_count", generation="0") > 0, service


def test_envoy_statistics_are_served_on_a_stats_only_listener_and_the_admin_stays_on_loopback(platform, api):
    stats = f"http://127.0.0.1:{platform.gateway_stats_port}"

    def requests_to_the_catalog() -> float:
        text = requests.get(f"{stats}/stats/prometheus", timeout=10).text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return value(samples, "envoy_cluster_upstream_rq_total", envoy_cluster_name="catalog")

    before = requests_to_the_catalog()
    assert api("GET", "/api/models").status_code == 200
    assert requests_to_the_catalog() >= before + 1

    # Nothing else of the admin interface answers there, however the path is spelled.
    for method, path in (
        ("GET", "/stats"),
        ("GET", "/config_dump"),
        ("GET", "/clusters"),
        ("POST", "/quitquitquit"),
        ("POST", "/stats/prometheus"),
        ("POST", "/logging?level=trace"),
        ("GET", "/stats/prometheus/../config_dump"),
        ("GET", "/stats/prometheus%2F..%2Fconfig_dump"),
        ("GET", "/./config_dump"),
    ):
        answer = requests.request(method, stats + path, timeout=10)
        assert answer.status_code in (400, 404), (method, path, answer.status_code, answer.text[:200])
        assert "configs" not in answer.text
    assert platform.processes["gateway"].poll() is None, "Envoy is still up"
    assert platform.gateway_admin.startswith("127.0.0.1:")
