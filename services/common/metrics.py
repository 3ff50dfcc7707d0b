"""Prometheus metrics: one registry per process, served at `/metrics` on a port of the service's own.

`IMAGEGEN_<SERVICE>_METRICS_PORT` turns a service's metrics on (0: the kernel's choice, written to
`<var>/metrics/<service>.port`); unset, nothing is served and nothing is recorded. Names follow
Prometheus conventions (`imagegen_…_seconds`, `…_total`); labels name models and servers, never end
users.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import pathlib
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .config import Env, var_dir

log = logging.getLogger("imagegen.metrics")

REGISTRY = CollectorRegistry(auto_describe=False)
# The ports `make run` and compose serve each service's /metrics on.
DEFAULT_METRICS_PORTS = {"generator": 9101, "catalog": 9102, "storage": 9103}
# The variable that turns each service's metrics on, and names their port.
PORT_VARIABLES = {
    "generator": "GENERATOR_METRICS_PORT",
    "catalog": "CATALOG_METRICS_PORT",
    "storage": "STORAGE_METRICS_PORT",
}
# Off until a service starts its endpoint: recording then costs a flag test per call.
enabled = False

# Seconds buckets for calls and jobs: a few ms (a cached read) to minutes (a model at work).
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

GRPC_HANDLED = Counter(
    "imagegen_grpc_server_handled",
    "gRPC calls this service answered, by method and status code.",
    ["method", "code"],
    registry=REGISTRY,
)
GRPC_SECONDS = Histogram(
    "imagegen_grpc_server_handling_seconds",
    "Time this service spent on a gRPC call, by method.",
    ["method"],
    buckets=SECONDS,
    registry=REGISTRY,
)


# The generator's workers.
QUEUE_WAIT_SECONDS = Histogram(
    "imagegen_queue_wait_seconds",
    "Time from a generation's creation to its job starting on a server, by model.",
    ["model"],
    buckets=SECONDS,
    registry=REGISTRY,
)
MODEL_SERVER_SECONDS = Histogram(
    "imagegen_model_server_seconds",
    "Time a model server spent on a job, by model, server and outcome.",
    ["model", "server", "outcome"],
    buckets=SECONDS,
    registry=REGISTRY,
)
# The catalog.
GENERATIONS = Counter(
    "imagegen_generations",
    "Generations that reached a terminal status, by model and status.",
    ["model", "status"],
    registry=REGISTRY,
)
# Every service: the garbage collector's pauses, which every call in flight waits out.
GC_PAUSE_SECONDS = Histogram(
    "imagegen_gc_pause_seconds",
    "Time the Python garbage collector held the process, by generation collected (2: a full pass).",
    ["generation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
GC_FROZEN_OBJECTS = Gauge(
    "imagegen_gc_frozen_objects",
    "Objects from the process's startup that the collector no longer walks (gc.freeze).",
    registry=REGISTRY,
)
GC_FROZEN_OBJECTS.set_function(gc.get_freeze_count)
# Storage.
OBJECTS_WRITTEN = Counter("imagegen_storage_objects_written", "Objects stored.", registry=REGISTRY)
BYTES_WRITTEN = Counter("imagegen_storage_written_bytes", "Bytes stored.", registry=REGISTRY)


def serve(service: str, env: Env | None = None) -> int | None:
    """Starts the service's metrics endpoint if its port is set; answers the port bound."""
    global enabled
    env = env or Env()
    name = PORT_VARIABLES[service]
    if env.str(name) == "":
        return None
    server, _ = start_http_server(
        env.int(name, 0), addr=env.str("METRICS_HOST", "127.0.0.1"), registry=REGISTRY
    )
    port = server.server_port
    written = port_file(var_dir(env), service)
    written.parent.mkdir(parents=True, exist_ok=True)
    tmp = written.with_suffix(".tmp")
    tmp.write_text(str(port))
    tmp.replace(written)
    enabled = True
    gc.callbacks.append(_time_collection)
    log.info("metrics serving", extra={"fields": {"port": port}})
    return port


_collection_started = 0.0


def _time_collection(phase: str, info: dict) -> None:
    global _collection_started
    if phase == "start":
        _collection_started = time.perf_counter()
    else:
        GC_PAUSE_SECONDS.labels(str(info["generation"])).observe(time.perf_counter() - _collection_started)


def record_call(method: str, code: str, seconds: float) -> None:
    if enabled:
        GRPC_HANDLED.labels(method, code).inc()
        GRPC_SECONDS.labels(method).observe(seconds)


class LoopCollector(Collector):
    """Metrics read at scrape time from the service's own state, on its event loop (the scrape runs
    in the endpoint's thread): `read` is a coroutine answering the families."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read: Callable[[], object], timeout: float = 5.0):
        self.loop = loop
        self.read = read
        self.timeout = timeout

    def collect(self) -> Iterable[Metric]:
        try:
            return asyncio.run_coroutine_threadsafe(self.read(), self.loop).result(self.timeout)
        except Exception as exc:  # a scrape must answer what it can, never fail the endpoint
            log.warning("metrics not read", extra={"fields": {"error": repr(exc)}})
            return []


def port_file(var: pathlib.Path, service: str) -> pathlib.Path:
    return var / "metrics" / f"{service}.port"
