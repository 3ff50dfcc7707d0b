"""Domain errors that know their gRPC code; one server interceptor turns them into statuses."""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Metadata an error carries besides its status, passed on by services and copied by gateways to HTTP.
RETRY_AFTER_KEY = "retry-after"
# Set on a reply's initial metadata, it is the HTTP status the gateways answer with (Envoy through a Lua
# filter in envoy.yaml): the transcoder alone answers every success with 200.
HTTP_STATUS_KEY = "x-imagegen-status"
_PASSED_ON_METADATA = (RETRY_AFTER_KEY,)


class DomainError(Exception):
    code = grpc.StatusCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: bytes | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        # A serialized google.rpc.Status received from another service, passed on unchanged.
        self._details = details
        self._metadata = metadata

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ((STATUS_DETAILS_KEY, self.status_details()), *self._metadata)

    def status_details(self) -> bytes:
        if self._details is not None:
            return self._details
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.field and self.code == grpc.StatusCode.INVALID_ARGUMENT:
            packed = any_pb2.Any()
            packed.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=self.field, description=self.message
                        )
                    ]
                )
            )
            status.details.append(packed)
        return status.SerializeToString()


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DomainError):
    """The call met a concurrent change; doing what the message says and asking again succeeds."""

    code = grpc.StatusCode.ABORTED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuotaExceeded(ResourceExhausted):
    """A limit was reached; the status carries a google.rpc.QuotaFailure naming it."""

    def __init__(self, message: str, *, subject: str):
        super().__init__(message)
        self.subject = subject

    def status_details(self) -> bytes:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        packed = any_pb2.Any()
        packed.Pack(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=self.subject, description=self.message)
                ]
            )
        )
        status.details.append(packed)
        return status.SerializeToString()


class RateLimited(ResourceExhausted):
    """The key's request rate was used up; says when to try again, in RetryInfo and `retry-after`."""

    def __init__(self, message: str, *, retry_after_seconds: float):
        self.retry_after_seconds = retry_after_seconds
        # HTTP's Retry-After is whole seconds; rounding up never invites an early retry.
        super().__init__(message, metadata=((RETRY_AFTER_KEY, str(max(1, math.ceil(retry_after_seconds)))),))

    def status_details(self) -> bytes:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after_seconds * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(packed)
        return status.SerializeToString()


# gRPC's retry pushback: a negative value tells a client's retry policy not to send the call again.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


class Unavailable(DomainError):
    """A service that answers this itself (its database is away) shares that cause with its replicas:
    clients' channels do not send the call again to another one (they do for a replica that could
    not take the call at all)."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kwargs):
        metadata = tuple(kwargs.pop("metadata", ()))
        if retry_after_seconds is not None:
            metadata += ((RETRY_AFTER_KEY, str(max(1, math.ceil(retry_after_seconds)))),)
        super().__init__(message, metadata=(*metadata, (RETRY_PUSHBACK_KEY, "-1")), **kwargs)


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(DomainError):
    code = grpc.StatusCode.INTERNAL


# The HTTP status each code answers with, as Envoy's transcoder maps them (google.rpc's mapping), for
# the answers a service makes as HTTP itself: the OpenAI surface's, the gateway's key check.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        DeadlineExceeded,
    )
}


class upstream:
    """`async with upstream("catalog"):` turns a failed call to another service into a DomainError.

    Answers about the request itself (bad input, not found, ...) pass through with their code and
    details; anything else means the other service could not do its job, which is UNAVAILABLE here.
    """

    def __init__(self, service: str):
        self.service = service

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, grpc.aio.AioRpcError):
            return False
        cls = _BY_CODE.get(exc.code())
        if cls is not None:
            trailers = dict(exc.trailing_metadata() or ())
            passed_on = tuple((key, trailers[key]) for key in _PASSED_ON_METADATA if key in trailers)
            raise cls(
                exc.details() or "", details=trailers.get(STATUS_DETAILS_KEY), metadata=passed_on
            ) from exc
        trailers = dict(exc.trailing_metadata() or ())
        passed_on = tuple((key, trailers[key]) for key in _PASSED_ON_METADATA if key in trailers)
        if exc.code() == grpc.StatusCode.UNAVAILABLE and passed_on and exc.details():
            # The service itself answered why (its database is away, say) and when to come back: both
            # go on. A transport failure's text (internal addresses) does not.
            raise Unavailable(exc.details(), metadata=passed_on) from exc
        raise Unavailable(
            f"the {self.service} service is unavailable ({exc.code().name}); try again", metadata=passed_on
        ) from exc


_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def error_for(code_number: int, message: str) -> DomainError:
    """The DomainError for a status reported inside a response (a batch's per-item outcome)."""
    return _BY_CODE.get(_STATUS_BY_NUMBER.get(code_number), Internal)(message)
