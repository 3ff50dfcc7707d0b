"""The one server interceptor every service installs: request ids, text without NUL, error translation,
access logs."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from . import internal, metrics, tracing
from .errors import DomainError, InvalidArgument
from .logs import REQUEST_ID_HEADER, new_request_id, request_id

log = logging.getLogger("imagegen.rpc")
_UNTRACED = contextlib.nullcontext()


def _request_id_of(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER:
            return value
    return new_request_id()


async def _abort(
    context: grpc.aio.ServicerContext,
    method: str,
    exc: BaseException,
    translate: Callable[[BaseException], DomainError | None] | None = None,
) -> None:
    if translate is not None and not isinstance(exc, DomainError):
        exc = translate(exc) or exc
    if isinstance(exc, DomainError):
        log.info(
            "rpc failed", extra={"fields": {"method": method, "code": exc.code.name, "error": exc.message}}
        )
        await context.abort(exc.code, exc.message, trailing_metadata=exc.trailing_metadata())
    log.error("rpc crashed", exc_info=exc, extra={"fields": {"method": method}})
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id.get()} when reporting it"
    )


def _nul_field(message: Message, prefix: str = "") -> str | None:
    """The first text field holding a NUL character: Postgres can't store one, and no input needs one."""
    for field, value in message.ListFields():
        name = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else (value,)
            if any("\x00" in item for item in values):
                return name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                items = [
                    entry for pair in value.items() for entry in pair if isinstance(entry, (str, Message))
                ]
            else:
                items = value if field.is_repeated else (value,)
            for item in items:
                if isinstance(item, str):
                    if "\x00" in item:
                        return name
                    continue
                found = _nul_field(item, name + ".")
                if found:
                    return found
    return None


def _check_text(request: Message) -> None:
    field = _nul_field(request)
    if field is not None:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)


def _is_public(method: str) -> bool:
    return method.startswith("/imagegen.") and not internal.is_internal(method)


@contextlib.asynccontextmanager
async def _rpc_scope(
    context: grpc.aio.ServicerContext,
    method: str,
    rid: str,
    translate: Callable[[BaseException], DomainError | None] | None = None,
):
    """Runs one call with its request id set, turning any exception into a gRPC status."""
    token = request_id.set(rid)
    started = time.perf_counter()
    # The caller's deadline as it arrived (through Envoy: the route's, or the caller's own if shorter).
    deadline_s = context.time_remaining()
    traced = (
        tracing.server_span(method, context.invocation_metadata(), _is_public(method))
        if tracing.enabled
        else _UNTRACED
    )
    try:
        with traced as call_span:
            try:
                if internal.is_internal(method):
                    internal.check(context.invocation_metadata())
                yield
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, method, exc, translate)
            finally:
                if metrics.enabled or call_span is not None:
                    code = context.code()
                    code_name = code.name if code is not None else "OK"
                    if metrics.enabled:
                        metrics.record_call(method, code_name, time.perf_counter() - started)
                    tracing.finish_call(call_span, code_name)
                if log.isEnabledFor(logging.DEBUG):
                    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
                    deadline = None if deadline_s is None else round(deadline_s, 3)
                    fields = {"method": method, "ms": elapsed_ms, "deadline_s": deadline}
                    log.debug("rpc done", extra={"fields": fields})
    finally:
        request_id.reset(token)


class ErrorAndContextInterceptor(grpc.aio.ServerInterceptor):
    """Request ids, typed errors (DomainError and its gRPC code, or what `translate` makes of an
    adapter's own exception), the internal-token check and refused NUL characters, for every call."""

    def __init__(self, translate: Callable[[BaseException], DomainError | None] | None = None):
        self.translate = translate

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        rid = _request_id_of(handler_call_details)

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                async with _rpc_scope(context, method, rid, self.translate):
                    _check_text(request)
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )

        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def unary_stream(request, context):
                async with _rpc_scope(context, method, rid, self.translate):
                    _check_text(request)
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )

        if handler.stream_unary:
            inner_client_stream = handler.stream_unary

            async def stream_unary(request_iterator, context):
                async with _rpc_scope(context, method, rid, self.translate):
                    return await inner_client_stream(request_iterator, context)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )

        return handler
