"""python -m wordstream.gateway [--host 127.0.0.1] [--port 8080] [--server localhost:50051] [--token ...] [--tls ...]

Every flag also as a WORDSTREAM_* variable: WORDSTREAM_HOST, WORDSTREAM_PORT, WORDSTREAM_SERVER,
WORDSTREAM_TOKEN, WORDSTREAM_TLS, WORDSTREAM_ROOT_CERTIFICATES, WORDSTREAM_TLS_SERVER_NAME,
WORDSTREAM_MAX_MESSAGE_BYTES, WORDSTREAM_ALLOWED_ORIGINS, WORDSTREAM_MULTIPLEX_STREAMS,
WORDSTREAM_WS_COMPRESSION.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import uvicorn  # noqa: E402

from wordstream.client import AsyncClient, InsecureToken  # noqa: E402
from wordstream.client._async import check_token_options  # noqa: E402
from wordstream.client.cli import add_connection_flags, connection  # noqa: E402
from wordstream.gateway.app import create_app  # noqa: E402
from wordstream.gateway.guard import Limits, networks  # noqa: E402
from wordstream.shared import parse_bool  # noqa: E402

DEFAULTS = Limits()


# The visitor's caps (guard.Limits): flag, type, help; each also read from WORDSTREAM_<FLAG>.
LIMIT_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("max-message-bytes", int, "largest message a page may send; larger ones get an error answer"),
    ("max-frame-bytes", int, "largest WebSocket frame: a bigger one closes the socket (1009) before it is buffered"),
    ("max-sockets-per-client", int, "open WebSockets one client address may hold"),
    (
        "max-sessions-per-client",
        int,
        "live sessions opened from one client address (a session counts until closed or idle --idle-timeout)",
    ),
    ("idle-timeout", float, "seconds after which a session left alone stops counting (the server's --idle-timeout)"),
    ("words-per-second", float, "words a socket may send a second on average; beyond: an error answer, socket open"),
    ("words-burst", int, "words one socket may send at once (a paste, a page's resync)"),
)


def env(flag: str, default: object) -> str:
    return os.environ.get("WORDSTREAM_" + flag.upper().replace("-", "_"), str(default))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wordstream.gateway",
        description="The WebSocket gateway and the live typing page, in front of a Wordstream server.",
    )
    p.add_argument(
        "--host",
        default=env("host", "127.0.0.1"),
        help="address to listen on (default loopback; 0.0.0.0 for every interface, as in a container)",
    )
    p.add_argument("--port", type=int, default=int(env("port", 8080)), help="0: a free port")
    for flag, kind, help_text in LIMIT_FLAGS:
        default = kind(env(flag, getattr(DEFAULTS, flag.replace("-", "_"))))
        p.add_argument(f"--{flag}", type=kind, default=default, help=f"{help_text} (default %(default)s)")
    p.add_argument(
        "--allowed-hosts",
        default=env("allowed-hosts", ",".join(sorted(DEFAULTS.allowed_hosts))),
        help="comma-separated names this gateway answers to (the Host header without its port; [::1] for IPv6); "
        "a page may open the socket from http(s)://<one of them>:<this port>",
    )
    p.add_argument(
        "--allowed-origins",
        default=env("allowed-origins", ""),
        help="comma-separated origins (https://example.com) whose pages may use the socket besides the gateway's own",
    )
    p.add_argument(
        "--trusted-proxies",
        default=env("trusted-proxies", ""),
        help="comma-separated CIDRs of proxies whose X-Forwarded-For names the client (default: none)",
    )
    p.add_argument(
        "--multiplex-streams",
        type=int,
        default=int(env("multiplex-streams", 4)),
        help="carry the pages' sessions on this many Multiplex streams to the server, each session on one "
        "by a hash of its id (0: a gRPC stream per session) (default %(default)s)",
    )
    p.add_argument(
        "--ws-compression",
        action=argparse.BooleanOptionalAction,
        default=parse_bool(env("ws-compression", "true")),
        help="compress the page's messages (permessage-deflate) when the browser offers it: under a third "
        "of the bytes, at a CPU cost per word (docs/COST.md) (default on)",
    )
    add_connection_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = connection(args)
    try:  # refused here, at start, rather than on a page's first socket
        check_token_options(args.server, options)
    except InsecureToken as e:
        print(f"InsecureToken: {e}", file=sys.stderr)
        return 1
    limits = Limits(
        **{flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, _, _ in LIMIT_FLAGS},
        allowed_hosts=frozenset(h.strip().lower() for h in args.allowed_hosts.split(",") if h.strip()),
        allowed_origins=frozenset(o.strip() for o in args.allowed_origins.split(",") if o.strip()),
        trusted_proxies=networks(args.trusted_proxies),
    )
    if args.multiplex_streams < 0:
        print("--multiplex-streams must be 0 or more", file=sys.stderr)
        return 2
    app = create_app(lambda: AsyncClient(args.server, **options), limits, args.multiplex_streams)
    # The frame ceiling is the WebSocket server's own max size: a bigger frame is refused from its
    # header, before its payload is read. uvicorn's sans-I/O websockets protocol costs the gateway a
    # third less CPU per word than its legacy one (docs/COST.md, "The gateway").
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=limits.max_frame_bytes,
        ws_per_message_deflate=args.ws_compression,
    )
    server = uvicorn.Server(config)
    sockets = [config.bind_socket()]
    sockets[0].listen(config.backlog)  # connections wait in the backlog from now: the line below means ready
    port = sockets[0].getsockname()[1]
    print(f"wordstream gateway: http://localhost:{port}/ -> {args.server}", flush=True)
    server.run(sockets=sockets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
