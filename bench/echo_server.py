"""The baseline: a bare grpc.aio bidirectional echo stream, answering each message with N bytes.

    python -m bench.echo_server --port 0     # prints "port N"

The first four bytes of each request give the size of the answer, so the load generator
can match the service's message sizes. No protobuf, no work: the transport's own limit.
It runs with the service's own gRPC server options (server.app.grpc_options).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402

from wordstream.server.app import grpc_options  # noqa: E402
from wordstream.server.config import Settings  # noqa: E402


async def echo(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield bytes(int.from_bytes(request[:4], "big"))


async def serve_peer(service: str, handlers: dict[str, grpc.RpcMethodHandler], port: int) -> None:
    """A benchmark peer: ``handlers`` (raw bytes in and out) under ``service``, with the service's own
    gRPC server options, on localhost:``port``; prints "port N" once it listens."""
    server = grpc.aio.server(options=grpc_options(Settings()))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    bound = server.add_insecure_port(f"localhost:{port}")
    await server.start()
    print(f"port {bound}", flush=True)
    await server.wait_for_termination()


async def serve(port: int) -> None:
    await serve_peer("bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(echo)}, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
