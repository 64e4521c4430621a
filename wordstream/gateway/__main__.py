"""python -m wordstream.gateway [--host 127.0.0.1] [--port 8080] [--server localhost:50051] [--token ...] [--tls ...]

Every flag also as a WORDSTREAM_* variable: WORDSTREAM_HOST, WORDSTREAM_PORT, WORDSTREAM_SERVER,
WORDSTREAM_TOKEN, WORDSTREAM_TLS, WORDSTREAM_ROOT_CERTIFICATES, WORDSTREAM_TLS_SERVER_NAME,
WORDSTREAM_MAX_MESSAGE_BYTES, WORDSTREAM_ALLOWED_ORIGINS.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import uvicorn  # noqa: E402

from wordstream.client import AsyncClient, InsecureToken  # noqa: E402
from wordstream.client._async import check_token_transport  # noqa: E402
from wordstream.client.cli import add_connection_flags, connection  # noqa: E402
from wordstream.gateway.app import create_app  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wordstream.gateway",
        description="The WebSocket gateway and the live typing page, in front of a Wordstream server.",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("WORDSTREAM_HOST", "127.0.0.1"),
        help="address to listen on (default loopback; 0.0.0.0 for every interface, as in a container)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("WORDSTREAM_PORT", "8080")), help="0: a free port")
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=int(os.environ.get("WORDSTREAM_MAX_MESSAGE_BYTES", str(64 * 1024))),
        help="largest message a page may send; larger ones get an error answer",
    )
    p.add_argument(
        "--allowed-origins",
        default=os.environ.get("WORDSTREAM_ALLOWED_ORIGINS", ""),
        help="comma-separated origins (https://example.com) whose pages may use the socket besides the gateway's own",
    )
    add_connection_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = connection(args)
    try:  # refused here, at start, rather than on a page's first socket
        check_token_transport(
            args.server,
            options["token"],
            options["tls"] or bool(options["root_certificates"]),
            options["insecure_token"],
        )
    except InsecureToken as e:
        print(f"InsecureToken: {e}", file=sys.stderr)
        return 1
    app = create_app(
        lambda: AsyncClient(args.server, **options),
        max_message_bytes=args.max_message_bytes,
        allowed_origins=frozenset(o.strip() for o in args.allowed_origins.split(",") if o.strip()),
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", ws_max_size=16 * 2**20)
    server = uvicorn.Server(config)
    sockets = [config.bind_socket()]
    sockets[0].listen(config.backlog)  # connections wait in the backlog from now: the line below means ready
    port = sockets[0].getsockname()[1]
    print(f"wordstream gateway: http://localhost:{port}/ -> {args.server}", flush=True)
    server.run(sockets=sockets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
