"""Bearer-token authentication, as a gRPC server interceptor (transport side).

Every call to the Wordstream service must carry ``authorization: Bearer <token>`` with
one of the accepted tokens, or it ends with UNAUTHENTICATED. Health checks and server
reflection stay open, so orchestrators and tools can probe the server. A session belongs
to the token that created it: :func:`owner_of` gives the digest stored on the session.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from wordstream.server.logs import Throttled

log = logging.getLogger("wordstream.auth")

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def digest(token: str) -> str:
    """What a session keeps of its owner's token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def owner_of(context: grpc.aio.ServicerContext, enabled: bool) -> str | None:
    if not enabled:
        return None
    token = bearer(context.invocation_metadata())
    return digest(token) if token else None


class TokenAuth(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type stubs
    def __init__(self, tokens: frozenset[str]) -> None:
        self._digests = frozenset(digest(t) for t in tokens)
        self.warnings = Throttled(log)  # refused calls are logged (method and peer, never the token)

    def _valid(self, token: str | None) -> bool:
        if not token:
            return False
        candidate = digest(token)
        return any(hmac.compare_digest(candidate, d) for d in self._digests)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if details.method.startswith(OPEN_SERVICES) or handler is None:
            return handler
        token = bearer(details.invocation_metadata)
        if self._valid(token):
            return handler
        message = "missing bearer token" if token is None else "invalid bearer token"
        return _refusal(handler, message, lambda peer: self._log(details.method, peer, message))

    def _log(self, method: str, peer: str, message: str) -> None:
        self.warnings.warning("call refused: " + message, event="unauthenticated", method=method, peer=peer)


def _refusal(handler: grpc.RpcMethodHandler, message: str, note: Callable[[str], None]) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        note(context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
