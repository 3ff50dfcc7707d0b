"""The credential services present to each other. Every `…InternalService` (the catalog's queue and
records, storage's bytes) answers only calls that carry the platform's internal token; public services
keep taking API keys (and signed URLs) as before, so gRPC clients still call them with a key alone.

The token is IMAGEGEN_INTERNAL_TOKEN, or one made once under the var folder (`make run`, the tests),
which every service of a deployment shares.
"""

from __future__ import annotations

import hmac

import grpc

from .config import Env, persistent_secret, var_dir
from .errors import Unauthenticated

INTERNAL_TOKEN_HEADER = "x-imagegen-internal-token"
_token = ""


def token_from_env(env: Env) -> str:
    return env.str("INTERNAL_TOKEN") or persistent_secret(var_dir(env) / "internal-token")


def configure(token: str) -> None:
    """This process's token: sent on its calls to other services, required on its internal ones."""
    global _token
    if not token:
        raise ValueError("the internal token must not be empty")
    _token = token


def credential() -> tuple[tuple[str, str], ...]:
    return ((INTERNAL_TOKEN_HEADER, _token),) if _token else ()


class _Credential:
    """Adds the internal token to every call on a channel (services/common/server.py's channels)."""

    async def _with_token(self, continuation, details, request):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *credential())
        return await continuation(details._replace(metadata=metadata), request)


class UnaryUnary(_Credential, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await self._with_token(continuation, details, request)


class UnaryStream(_Credential, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await self._with_token(continuation, details, request)


class StreamUnary(_Credential, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await self._with_token(continuation, details, request_iterator)


class StreamStream(_Credential, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await self._with_token(continuation, details, request_iterator)


def client_interceptors() -> list:
    return [UnaryUnary(), UnaryStream(), StreamUnary(), StreamStream()]


def is_internal(method: str) -> bool:
    """`/package.Service/Method` of an internal service."""
    return method.split("/")[1].endswith("InternalService") if method.count("/") == 2 else False


def check(metadata) -> None:
    presented = next((value for key, value in metadata or () if key == INTERNAL_TOKEN_HEADER), "")
    if not _token or not isinstance(presented, str) or not hmac.compare_digest(presented, _token):
        raise Unauthenticated("internal services answer only the platform's own services")
