"""Registering the servicer with gRPC, with request parsers that never fail.

The generated ``add_WordstreamServicer_to_server`` parses requests with ``FromString``, so
bytes that are not a valid message (bad protobuf, invalid UTF-8) end the call with a bare
INTERNAL error. Here each request parser hands such bytes on as :class:`Malformed`, and the
servicer answers them with INVALID_ARGUMENT naming what was wrong. The methods are read from
the proto's service descriptor, so a new rpc needs no change here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from wordstream.server.errors import MalformedRequest
from wordstream.v1 import wordstream_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Wordstream"]


class Malformed:
    """Stands in for a request whose bytes did not parse, so the servicer can answer it clearly."""

    seq = 0

    def __init__(self, error: str) -> None:
        self.error = error


def check_parsed(request: Any) -> None:
    """Raise MalformedRequest for a request that did not parse (the unary calls)."""
    if isinstance(request, Malformed):
        raise MalformedRequest(request.error)


def tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as e:
            return Malformed(str(e))

    return deserialize


def add_to_server(servicer: Any, server: grpc.aio.Server) -> None:
    """Register every method of the proto's Wordstream service on ``servicer``."""
    handlers = {}
    for method in SERVICE.methods:
        request = tolerant(getattr(pb, method.input_type.name).FromString)
        response = getattr(pb, method.output_type.name).SerializeToString
        behaviour = getattr(servicer, method.name)
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(behaviour, request, None)  # yields bytes
        elif not method.client_streaming and not method.server_streaming:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(behaviour, request, response)
        else:
            raise ValueError(f"{method.full_name}: a streaming shape this server does not serve")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
