"""gRPC server lifecycle shared by the services: health, reflection, port binding, SIGTERM drain."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import os
import pathlib
import signal
import weakref
from collections.abc import Awaitable, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from . import internal, metrics, tracing
from .config import ConfigError, replica_addresses
from .errors import DomainError
from .interceptors import ErrorAndContextInterceptor

log = logging.getLogger("imagegen.server")

# Unbounded default message sizes would let one client pin a service's memory: a service takes
# messages up to this size from its callers (Envoy lets REST bodies of 12 MiB through).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# What a service answers may be larger: a generation carries its request twice (the model server's
# `input` and the app's `requestBody`), so a 12 MiB create answers with more than 24 MB. The services'
# channels to each other take answers of that size.
MAX_ANSWER_BYTES = 64 * 1024 * 1024

# Calls between services spread over every replica a target names, and one that a replica could not take
# (stopped, killed, restarting: UNAVAILABLE before any answer) is sent again, to another replica when
# there is one; calls that change state are safe to repeat (an enqueue carries the id it creates,
# finishing a job holds its lease). A service that answers UNAVAILABLE itself (its database away) says
# not to (errors.Unavailable's retry pushback): its replicas share the cause.
RETRIED_ATTEMPTS = 4
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": RETRIED_ATTEMPTS,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)
CLIENT_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
    ("grpc.service_config", SERVICE_CONFIG),
]
# Clients resolve a name once and keep their connections: a connection a server closes after five
# minutes (calls in flight finish first) makes them resolve again, so replicas added since get calls.
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_ANSWER_BYTES),
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
]

_on_stop: weakref.WeakKeyDictionary[grpc.aio.Server, list[Callable[[], Awaitable[None]]]] = (
    weakref.WeakKeyDictionary()
)
# Per server: its health servicer and the service names it reports on.
_health: weakref.WeakKeyDictionary[grpc.aio.Server, tuple[health.aio.HealthServicer, list[str]]] = (
    weakref.WeakKeyDictionary()
)


def new_server(
    internal_token: str, translate: Callable[[BaseException], DomainError | None] | None = None
) -> grpc.aio.Server:
    """A server whose calls get request ids, typed errors (`translate` names the DomainError an
    adapter's own exception means) and, on internal services, the check of the internal token this
    process also sends on its own calls."""
    internal.configure(internal_token)
    return grpc.aio.server(interceptors=[ErrorAndContextInterceptor(translate)], options=SERVER_OPTIONS)


def finish_server(server: grpc.aio.Server, service_names: Iterable[str], host: str, port: int) -> int:
    """Adds health and reflection, binds the port, and returns the port actually bound."""
    names = list(service_names)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _health[server] = (health_servicer, names)
    _enable_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    return bound


# grpcio-reflection serves only v1alpha; newer clients (grpcurl, Postman) ask v1 first. The two protocols
# are the same messages under another package, so one servicer answers both.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    servicer = reflection.aio.ReflectionServicer(service_names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": info}),)
    )


def on_stop(server: grpc.aio.Server, hook: Callable[[], Awaitable[None]]) -> None:
    """Runs `hook` after the server has drained (closing pools, channels)."""
    _on_stop.setdefault(server, []).append(hook)


async def start(server: grpc.aio.Server) -> None:
    await server.start()
    health_servicer, names = _health[server]
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def stop(server: grpc.aio.Server, grace: float) -> None:
    """Drain: report NOT_SERVING, let in-flight calls finish within `grace`, then release resources."""
    if server in _health:
        await _health[server][0].enter_graceful_shutdown()
    await server.stop(grace)
    for hook in reversed(_on_stop.pop(server, [])):
        try:
            await hook()
        except Exception:
            log.exception("shutdown hook failed")


def write_port_file(port: int) -> None:
    """Tests start services on port 0 and learn the port from this file."""
    path = os.environ.get("IMAGEGEN_PORT_FILE")
    if path:
        tmp = pathlib.Path(path + ".tmp")
        tmp.write_text(str(port))
        tmp.replace(path)


async def serve_until_signal(server: grpc.aio.Server, port: int, name: str, grace: float) -> None:
    await start(server)
    _freeze_startup_objects()
    write_port_file(port)
    log.info("serving", extra={"fields": {"service": name, "port": port}})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("draining", extra={"fields": {"grace_seconds": grace}})
    await stop(server, grace)
    log.info("stopped")


def _freeze_startup_objects() -> None:
    """What startup made (modules, protobuf descriptors, pools: 40,000 to 60,000 objects) lives as long
    as the process. Frozen, the collector's full passes stop walking it. Under load (30 s at c=16) they
    took 27 to 38 ms on average, a pause every call in flight waited out; frozen, 5 to 20 ms
    (`imagegen_gc_pause_seconds{generation="2"}`)."""
    gc.collect()
    gc.freeze()


def channel_target(targets: str) -> str:
    """The gRPC name of a service's replicas: `host:port` as it is (a name that resolves to every replica,
    as a headless Service does, is balanced over all of them), or a comma-separated list of IP
    `host:port`s, one per replica."""
    if "," not in targets:
        return targets
    addresses = replica_addresses(targets)
    try:
        (family,) = {ipaddress.ip_address(host).version for host, _ in addresses}
    except ValueError:
        raise ConfigError(
            f"{targets!r}: a list of replicas names IP addresses of one family (host:port, ...); give one"
            " name that resolves to every replica instead"
        ) from None
    listed = ",".join(f"[{host}]:{port}" if family == 6 else f"{host}:{port}" for host, port in addresses)
    return f"ipv{family}:{listed}"


def insecure_channel(target: str) -> grpc.aio.Channel:
    """A channel to another service's replicas (`channel_target`); its clients send
    `logs.outgoing_metadata()` on every call."""
    return grpc.aio.insecure_channel(channel_target(target), options=CLIENT_CHANNEL_OPTIONS)


def internal_channel(target: str) -> grpc.aio.Channel:
    """A channel whose every call carries the internal token, for tools and tests that call internal
    services with bare stubs."""
    return grpc.aio.insecure_channel(
        channel_target(target), options=CLIENT_CHANNEL_OPTIONS, interceptors=internal.client_interceptors()
    )


def run(name: str, config, create_server) -> None:
    """A service's `main()`: JSON logs, then serve until SIGTERM or SIGINT, then drain."""
    from . import logs

    logs.configure(name, config.log_level)
    tracing.configure(name)

    async def serve() -> None:
        server, port = await create_server(config)
        metrics.serve(name)
        await serve_until_signal(server, port, name, config.shutdown_grace_seconds)

    try:
        _event_loop_runner()(serve())
    finally:
        tracing.shutdown()


def _event_loop_runner():
    """uvloop's where it is installed (every platform but Windows): each wake-up of a service costs less
    on it, and a sync generation wakes four processes several times each."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
