"""The client's exceptions: callers catch these, never a raw grpc.RpcError.

WordstreamError                 base; .code is the gRPC status name
├── InvalidRequest              INVALID_ARGUMENT, OUT_OF_RANGE: the request was wrong
├── NotFound                    NOT_FOUND: unknown model or session
├── SessionBusy                 FAILED_PRECONDITION: the session is attached elsewhere
├── LimitReached                RESOURCE_EXHAUSTED: a session or server limit
├── Unauthenticated             UNAUTHENTICATED, PERMISSION_DENIED
├── Unavailable                 UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED: cannot reach the server
└── ServerError                 INTERNAL and anything else
"""

from __future__ import annotations

import grpc


class WordstreamError(Exception):
    code = "UNKNOWN"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidRequest(WordstreamError):
    code = "INVALID_ARGUMENT"


class NotFound(WordstreamError):
    code = "NOT_FOUND"


class SessionBusy(WordstreamError):
    code = "FAILED_PRECONDITION"


class LimitReached(WordstreamError):
    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(WordstreamError):
    code = "UNAUTHENTICATED"


class Unavailable(WordstreamError):
    code = "UNAVAILABLE"


class ServerError(WordstreamError):
    code = "INTERNAL"


class InsecureToken(WordstreamError, ValueError):
    """A bearer token would cross a network in plaintext: refused before any connection."""

    code = "INSECURE_TOKEN"


_BY_CODE: dict[str, type[WordstreamError]] = {
    "INVALID_ARGUMENT": InvalidRequest,
    "OUT_OF_RANGE": InvalidRequest,
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": SessionBusy,
    "RESOURCE_EXHAUSTED": LimitReached,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": Unauthenticated,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": Unavailable,
    "CANCELLED": Unavailable,
}


def from_code(code: str, message: str) -> WordstreamError:
    return _BY_CODE.get(code, ServerError)(message, code)


def from_rpc_error(error: grpc.RpcError) -> WordstreamError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    name = code.name if code is not None else "UNKNOWN"
    return from_code(name, details or name)
