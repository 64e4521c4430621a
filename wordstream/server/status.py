"""The one table from domain errors to gRPC status codes.

Errors it does not know become INTERNAL with a generic message; the traceback stays in the
server's log.
"""

from __future__ import annotations

import grpc

from wordstream.server import errors

STATUS: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.BadWord: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BadRewind: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BadRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.AlreadyOpen: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OpenHere: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotOpenHere: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TooManyEntries: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.MalformedRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.SessionLimit: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotOpened: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.SessionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.SessionBusy: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SessionExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.BadSessionId: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ServerFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.SessionMoved: grpc.StatusCode.UNAVAILABLE,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
}
INTERNAL_MESSAGE = "internal error; the server log has the details"


def status_of(error: errors.ServiceError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return grpc.StatusCode.INTERNAL
