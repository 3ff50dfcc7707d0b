"""The Python gateway: REST on aiohttp, transcoded to gRPC over one channel per upstream.

For machines without Envoy; it answers every request as envoy.yaml's transcoder would.
`python -m gateway.server`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import grpc
from aiohttp import web

from services.common import logs
from services.common.errors import HTTP_STATUS_KEY, RETRY_AFTER_KEY, STATUS_DETAILS_KEY
from services.common.server import CHANNEL_OPTIONS, write_port_file

from . import openapi
from .config import (
    KEYLESS_METHODS,
    METHOD_ROUTE_TIMEOUT_SECONDS,
    ROUTE_TIMEOUT_SECONDS,
    STREAM_SSE,
    TRANSCODED_SERVICES,
    GatewayConfig,
)
from .transcoder import HTTP_STATUS, Route, TranscodeError, Transcoder

log = logging.getLogger("imagegen.gateway")

# Not forwarded as metadata: hop-by-hop headers, and ones gRPC itself owns.
_SKIPPED_HEADERS = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host",
    "content-length", "content-type", "expect", "http2-settings",
}  # fmt: skip


# Statuses that answer with no body, so no Content-Type.
_BODILESS = (204, 304)


def _metadata(request: web.Request, request_id: str) -> list[tuple[str, str]]:
    metadata = [("x-request-id", request_id)]
    for name, value in request.headers.items():
        key = name.lower()
        if (
            key in _SKIPPED_HEADERS
            or key.startswith("grpc-")
            or key.endswith("-bin")
            or key == "x-request-id"
        ):
            continue
        if value.isascii() and value.isprintable():
            metadata.append((key, value))
    metadata.append(("x-envoy-original-path", request.path_qs))
    metadata.append(("x-envoy-original-method", request.method))
    return metadata


def _reply_headers(initial_metadata) -> tuple[int, dict[str, str]]:
    """A reply's initial metadata becomes HTTP headers, as Envoy passes upstream headers on; the
    `x-imagegen-status` entry becomes the status, as envoy.yaml's Lua filter makes it."""
    status, headers = 200, {}
    for key, value in initial_metadata or ():
        if key.startswith("grpc-") or key.endswith("-bin") or key in _SKIPPED_HEADERS:
            continue
        if key == HTTP_STATUS_KEY:
            status = int(value)
        else:
            headers[key] = value
    return status, headers


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain")


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.transcoder = Transcoder.from_descriptor_set(config.descriptor_set, TRANSCODED_SERVICES)
        self.channels = {
            name: grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            for name, target in config.upstreams.items()
        }
        self._calls: dict[str, object] = {}

    def _callable(self, route: Route):
        call = self._calls.get(route.grpc_path)
        if call is None:
            channel = self.channels[TRANSCODED_SERVICES[route.method.containing_service.full_name]]
            factory = channel.unary_stream if route.server_streaming else channel.unary_unary
            call = factory(
                route.grpc_path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=route.response_class.FromString,
            )
            self._calls[route.grpc_path] = call
        return call

    def _error(self, error: grpc.aio.AioRpcError) -> web.Response:
        code = error.code().value[0]
        details = None
        headers = {}
        for key, value in error.trailing_metadata() or ():
            if key == STATUS_DETAILS_KEY:
                details = value
            elif key == RETRY_AFTER_KEY:
                # Envoy passes a trailers-only reply's metadata on as response headers; so do we.
                headers["Retry-After"] = value
        body = self.transcoder.status_json(code, error.details() or "", details)
        return web.Response(
            status=HTTP_STATUS.get(code, 500), body=body, content_type="application/json", headers=headers
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        matched = self.transcoder.match(request.method, request.path_qs.split("?", 1)[0])
        if matched is None:
            return _text(404, f"Could not resolve {request.path} to a method.")
        route, bindings = matched
        if request.content_length is not None and request.content_length > self.config.max_request_body_bytes:
            return _text(413, "Payload Too Large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _text(413, "Payload Too Large")
        try:
            message = self.transcoder.build_request(
                route, bindings, request.query_string, body, request.headers.get("content-type", "")
            )
        except TranscodeError as exc:
            return _text(400, str(exc))

        request_id = request.headers.get("x-request-id") or logs.new_request_id()
        metadata = _metadata(request, request_id)
        timeout = METHOD_ROUTE_TIMEOUT_SECONDS.get(
            route.grpc_path,
            ROUTE_TIMEOUT_SECONDS[TRANSCODED_SERVICES[route.method.containing_service.full_name]],
        )
        call = self._callable(route)(message, metadata=metadata, timeout=timeout)
        if route.server_streaming:
            return await self._stream(request, route, call)
        try:
            answer = await call
        except grpc.aio.AioRpcError as error:
            return self._error(error)
        status, headers = _reply_headers(await call.initial_metadata())
        headers["grpc-status"] = "0"
        if route.http_body_response:
            return web.Response(
                status=status, body=answer.data, content_type=answer.content_type or None, headers=headers
            )
        return web.Response(
            status=status,
            body=self.transcoder.to_json(answer),
            content_type="application/json",
            headers=headers,
        )

    async def _stream(self, request: web.Request, route: Route, call) -> web.StreamResponse:
        # Headers wait for the first message: an error before it still gets its proper status.
        iterator = call.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as error:
            return self._error(error)
        status, headers = _reply_headers(await call.initial_metadata())
        response = web.StreamResponse(status=status, headers=headers)
        if route.http_body_response:
            if first is not None or status not in _BODILESS:
                response.content_type = (
                    first.content_type if first is not None else ""
                ) or "application/octet-stream"
            await response.prepare(request)
            if first is not None:
                await response.write(first.data)
                try:
                    async for message in iterator:
                        await response.write(message.data)
                except grpc.aio.AioRpcError as error:
                    log.warning("stream broken", extra={"fields": {"code": error.code().name}})
            await response.write_eof()
            return response
        if STREAM_SSE:
            return await self._server_sent_events(request, response, first, iterator)
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"[")
        if first is not None:
            await response.write(self.transcoder.to_json(first))
            try:
                async for message in iterator:
                    await response.write(b"," + self.transcoder.to_json(message))
            except grpc.aio.AioRpcError as error:
                log.warning("stream broken", extra={"fields": {"code": error.code().name}})
        await response.write(b"]")
        await response.write_eof()
        return response

    async def _server_sent_events(self, request, response, first, iterator) -> web.StreamResponse:
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        if first is not None:
            await response.write(b"data: " + self.transcoder.to_json(first) + b"\n\n")
            try:
                async for message in iterator:
                    await response.write(b"data: " + self.transcoder.to_json(message) + b"\n\n")
            except grpc.aio.AioRpcError as error:
                # As with Envoy, an error after the first event has no HTTP status left to carry it.
                log.warning("stream broken", extra={"fields": {"code": error.code().name}})
        await response.write_eof()
        return response

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))


def create_app(config: GatewayConfig) -> web.Application:
    gateway = Gateway(config)
    app = web.Application(client_max_size=config.max_request_body_bytes)
    # The same document `make protos` commits as gateway/openapi.yaml, made from the same descriptors.
    document = json.dumps(
        openapi.build(config.descriptor_set, TRANSCODED_SERVICES, KEYLESS_METHODS), ensure_ascii=False
    ).encode()

    async def openapi_json(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)

    async def close(_app: web.Application) -> None:
        await gateway.close()

    app.on_cleanup.append(close)
    return app


async def serve(config: GatewayConfig) -> None:
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    write_port_file(port)
    log.info("serving", extra={"fields": {"service": "gateway", "port": port}})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("draining")
    await runner.cleanup()
    log.info("stopped")


def main() -> None:
    config = GatewayConfig.from_env()
    logs.configure("gateway", config.log_level)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
