"""Traces: OpenTelemetry with W3C `traceparent`, exported over OTLP/gRPC when
OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK's own variables apply: OTEL_BSP_SCHEDULE_DELAY,
OTEL_TRACES_SAMPLER, ...). Unset, the SDK is never loaded and every function here returns at once.

A trace starts at Envoy (its OpenTelemetry tracer, same endpoint) or at the first service a call reaches,
and follows every gRPC call between services (`outgoing()` in the metadata every client sends), every
outbound HTTP request (model servers, image URLs, webhooks: `aiohttp_trace_configs`) and the queue: the
catalog keeps the `traceparent` of the call that created a generation, and the worker that runs it and
the dispatcher that delivers its webhooks resume the trace from it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACEPARENT = "traceparent"

enabled = False
_tracer: Any = None
_provider: Any = None
_propagator: Any = None


def configure(service: str) -> None:
    """Exports this process's spans as `imagegen-<service>` when the OTLP endpoint is set."""
    global enabled, _tracer, _provider, _propagator
    if not os.environ.get(ENDPOINT_VARIABLE):
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"imagegen-{service}"}))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _tracer = trace.get_tracer("imagegen")
    _propagator = TraceContextTextMapPropagator()
    enabled = True


def shutdown() -> None:
    """Sends what is still buffered."""
    if _provider is not None:
        _provider.shutdown()


def _kind(name: str):
    from opentelemetry.trace import SpanKind

    return SpanKind[name.upper()]


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    kind: str = "internal",
    attributes: dict[str, Any] | None = None,
    start_ns: int | None = None,
) -> Iterator[Any]:
    """A span around the block, current inside it. `parent` is a `traceparent` to resume ("" or an
    invalid one: a new trace); None: the current span's child."""
    if not enabled:
        yield None
        return
    context = None if parent is None else _propagator.extract({TRACEPARENT: parent} if parent else {})
    with _tracer.start_as_current_span(
        name, context=context, kind=_kind(kind), attributes=attributes, start_time=start_ns
    ) as current:
        yield current


def record(
    name: str, start_ns: int, end_ns: int, *, parent: str, attributes: dict[str, Any] | None = None
) -> None:
    """A span that already happened (the time a job waited in the queue) in the trace `parent` names."""
    if not enabled:
        return
    context = _propagator.extract({TRACEPARENT: parent} if parent else {})
    _tracer.start_span(name, context=context, start_time=start_ns, attributes=attributes).end(end_time=end_ns)


@contextlib.contextmanager
def server_span(method: str, metadata: Iterable[tuple[str, Any]] | None, may_start: bool) -> Iterator[Any]:
    """The span of one gRPC call this process answers, resuming the caller's trace. A call that
    carries no trace starts one only when `may_start` (a public method: a client that does not trace);
    the services' own background calls (claims, heartbeats) and health checks are not traced."""
    parent = next((value for key, value in metadata or () if key == TRACEPARENT), "")
    if not enabled or not (parent or may_start):
        yield None
        return
    service, _, rpc_method = method.lstrip("/").rpartition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc_method}
    with span(method.lstrip("/"), parent=parent, kind="server", attributes=attributes) as current:
        yield current


def finish_call(current: Any, code: str) -> None:
    """Marks a call's span with its gRPC status; anything but OK is an error."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("rpc.grpc.status_code", code)
    if code != "OK":
        current.set_status(Status(StatusCode.ERROR, code))


def traceparent() -> str:
    """The current span's `traceparent`; "" without one."""
    if not enabled:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def outgoing() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current trace to the service called."""
    value = traceparent()
    return ((TRACEPARENT, value),) if value else ()


def trace_id() -> str:
    """The current trace's id (32 hex digits), for log lines; "" without one."""
    if not enabled:
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def aiohttp_trace_configs() -> list:
    """For an aiohttp session: a client span per request, its `traceparent` sent along. Spans name the
    host and port, never the path or query (they may carry a tenant's tokens)."""
    if not enabled:
        return []
    import aiohttp
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    async def started(_session, context, params) -> None:
        url = params.url
        context.span = _tracer.start_span(
            f"HTTP {params.method}",
            kind=_kind("client"),
            attributes={"http.request.method": params.method, "server.address": url.host or "",
                        "server.port": url.port or 0},
        )  # fmt: skip
        _propagator.inject(params.headers, context=trace.set_span_in_context(context.span))

    async def ended(_session, context, params) -> None:
        status = params.response.status
        context.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            context.span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        context.span.end()

    async def failed(_session, context, params) -> None:
        context.span.set_status(Status(StatusCode.ERROR, type(params.exception).__name__))
        context.span.end()

    config = aiohttp.TraceConfig()
    config.on_request_start.append(started)
    config.on_request_end.append(ended)
    config.on_request_exception.append(failed)
    return [config]
