"""Traces, received by a loopback OTLP/gRPC collector built from opentelemetry-proto: one async
generation through Envoy is one trace with spans from Envoy, the generator, the catalog and storage, the
time it waited in the queue as a span of its own, the model server's request and the webhook delivery in
it (their `traceparent` headers name it), and the services' log lines carrying its id."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import rest_client, running_platform
from tests.fakes import FakeModelServer, WebhookReceiver
from tools.otlp_receiver import otlp_receiver

pytestmark = pytest.mark.starts_processes
KEY = "sk_tracing_" + uuid.uuid4().hex
SERVICES = {"imagegen-gateway", "imagegen-generator", "imagegen-catalog", "imagegen-storage"}


@pytest.fixture(scope="module")
def collector():
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(pg, tmp_path_factory, collector):
    _, endpoint = collector
    fake = FakeModelServer(delay=0.3)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # Every call answered is logged ("rpc done"), so each has a line to carry its trace id.
        "IMAGEGEN_LOG_LEVEL": "DEBUG",
    }
    try:
        with running_platform(pg, tmp_path_factory, KEY, **env) as platform:
            yield platform, fake
    finally:
        fake.stop()


def _trace_of(traceparent: str) -> str:
    version, trace_id, _span_id, _flags = traceparent.split("-")
    assert version == "00" and len(trace_id) == 32
    return trace_id


def test_one_generation_is_one_trace_across_envoy_every_service_the_queue_the_model_and_the_webhook(
    traced, collector
):
    platform, fake = traced
    receiver, _ = collector
    hooks = WebhookReceiver([])
    try:
        api = rest_client(platform, KEY)
        made = api("POST", "/api/models", json={
            "name": "traced", "provider": "openai", "upstreamModel": "m",
            "servers": [{"url": f"{fake.url}/v1"}]})  # fmt: skip
        assert made.status_code == 200, made.text
        created = api(
            "POST",
            "/api/images/generations",
            json={
                "prompt": "a traced room",
                "model": "traced",
                "width": 64,
                "height": 64,
                "callbackUrl": hooks.url,
            },
            headers={"X-Async": "true"},
        )
        assert created.status_code == 200, created.text
        deadline = time.monotonic() + 30
        while not hooks.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hooks.received, "the webhook arrived"
    finally:
        hooks.stop()

    trace_id = _trace_of(fake.stats.headers[-1]["traceparent"])
    assert _trace_of(hooks.received[0][0]["traceparent"]) == trace_id, "the webhook is in the same trace"

    deadline = time.monotonic() + 20
    wanted = {"queue wait", "run generation", "deliver webhook"}
    while time.monotonic() < deadline:
        spans = [span for span in receiver.received() if span.trace_id == trace_id]
        if {s.service for s in spans} >= SERVICES and wanted <= {s.name for s in spans}:
            break
        time.sleep(0.25)
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert {s.service for s in spans} >= SERVICES, sorted({(s.service, s.name) for s in spans})
    assert wanted <= set(by_name), sorted(by_name)

    # Envoy started the trace; the generator's call is its child, the catalog's enqueue the generator's.
    (create,) = [s for s in spans if "GeneratorService/CreateGeneration" in s.name]
    assert create.service == "imagegen-generator"
    (root,) = [s for s in spans if not s.parent_id]
    assert root.service == "imagegen-gateway" and create.parent_id == root.span_id
    (enqueue,) = [s for s in spans if s.name.endswith("CatalogInternalService/EnqueueGeneration")]
    assert enqueue.parent_id == create.span_id
    # The job resumed the trace from the enqueue, after its wait in the queue, which is a span of its own.
    (run,) = by_name["run generation"]
    (wait,) = by_name["queue wait"]
    assert run.parent_id == enqueue.span_id and wait.parent_id == enqueue.span_id
    assert enqueue.start_ns <= wait.start_ns < wait.end_ns <= run.start_ns
    # The model server's request and the images stored are the job's.
    posts = [s for s in spans if s.name == "HTTP POST" and s.parent_id == run.span_id]
    assert posts and _trace_of(fake.stats.headers[-1]["traceparent"]) == trace_id
    for child in ("StorageInternalService/PutSmallObjects", "CatalogInternalService/CompleteJobs"):
        assert any(s.name.endswith(child) and s.parent_id == run.span_id for s in spans)
    (deliver,) = by_name["deliver webhook"]
    assert any(s.name == "HTTP POST" and s.parent_id == deliver.span_id for s in spans)

    # Log lines of the generation carry the trace id, in every service.
    for service in ("generator", "catalog", "storage"):
        assert f'"trace_id": "{trace_id}"' in (platform.log_dir / f"{service}.log").read_text(), service


def test_background_calls_and_health_checks_start_no_trace(traced, collector):
    platform, _ = traced
    receiver, _ = collector
    time.sleep(3)  # claims, heartbeats and Envoy's health checks go on meanwhile
    names = {span.name for span in receiver.received()}
    assert not any("Internal" in name and "Claim" in name for name in names), names
    assert not any(name.startswith("grpc.health") for name in names), names
