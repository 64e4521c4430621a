"""What one browser visitor may do through the gateway, and from where.

- Hosts: a request whose Host (without its port) is not in ``allowed_hosts`` is refused, so a
  page on another name that resolves here (DNS rebinding) cannot reach the gateway.
- Origins: a WebSocket must carry an Origin, either ``http(s)://<allowed host>:<the gateway's
  own port>`` or one listed in ``allowed_origins``: another site's page cannot use the gateway
  (and its token) from a visitor's browser.
- Caps per client address: open sockets (``max_sockets_per_client``) and live sessions opened
  from it (``max_sessions_per_client``: a session counts until it is closed, or idle for
  ``idle_timeout``, the server's own expiry); words per socket through a token bucket
  (``words_per_second``, ``words_burst``), so a paste or a page's resync still goes through.
- Behind a proxy the client address is read from X-Forwarded-For only when the peer is one of
  ``trusted_proxies``.

Headers: every HTTP response carries SECURITY_HEADERS. No grpc here.
"""

from __future__ import annotations

import ipaddress
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# The page's files come from here only: no other origin, no inline script, no framing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """The gateway's limits; each is a flag of python -m wordstream.gateway."""

    max_message_bytes: int = 64 * 1024  # a bigger message gets an error answer, the socket stays open
    max_frame_bytes: int = 2**20  # a bigger frame closes the socket (1009) before it is buffered
    max_sockets_per_client: int = 8
    max_sessions_per_client: int = 32
    words_per_second: float = 30.0
    words_burst: int = 200
    idle_timeout: float = 600.0  # when a session left alone stops counting (the server's --idle-timeout)
    allowed_hosts: frozenset[str] = DEFAULT_HOSTS
    allowed_origins: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = ()


def networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (or addresses) as networks; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


def host_of(host_header: str) -> str:
    """The host of a Host header without its port, lowercase; an IPv6 address keeps its brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def origin_allowed(origin: str | None, limits: Limits, own_port: int) -> bool:
    if not origin:
        return False  # a browser always sends one; refusing none leaves no way around the check
    if origin in limits.allowed_origins:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return host in limits.allowed_hosts and port == own_port


def client_address(scope: Scope, trusted: Iterable[Network]) -> str:
    """The peer's address, or, when the peer is a trusted proxy, the last X-Forwarded-For
    address that is not one of the trusted proxies."""
    peer = str((scope.get("client") or ("", 0))[0])
    trusted = tuple(trusted)

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    headers = dict(scope.get("headers") or [])
    forwarded = str(headers.get(b"x-forwarded-for", b"").decode("latin-1"))
    for address in reversed([a.strip() for a in forwarded.split(",") if a.strip()]):
        if not is_trusted(address):
            return address
    return peer


class Guard:
    """The per-address accounting of one gateway process (one event loop: no locks)."""

    def __init__(self, limits: Limits, clock: Any = time.monotonic) -> None:
        self.limits, self.clock = limits, clock
        self.sockets: dict[str, int] = defaultdict(int)
        self.sessions: dict[str, dict[str, float]] = defaultdict(dict)  # address -> session id -> last use

    def socket_opened(self, address: str) -> bool:
        """Count a new socket; False (not counted) when the address has its maximum open."""
        if self.sockets[address] >= self.limits.max_sockets_per_client:
            return False
        self.sockets[address] += 1
        return True

    def socket_closed(self, address: str) -> None:
        self.sockets[address] -= 1
        if self.sockets[address] <= 0:
            del self.sockets[address]

    def live_sessions(self, address: str) -> int:
        now, held = self.clock(), self.sessions[address]
        for session_id in [s for s, used in held.items() if now - used > self.limits.idle_timeout]:
            del held[session_id]
        return len(held)

    def may_open(self, address: str) -> bool:
        return self.live_sessions(address) < self.limits.max_sessions_per_client

    def used(self, address: str, session_id: str, replaced: str = "") -> None:
        """A session of this address was opened or used (``replaced``: the id it took over from)."""
        held = self.sessions[address]
        if replaced:
            held.pop(replaced, None)
        held[session_id] = self.clock()

    def closed(self, address: str, session_id: str) -> None:
        self.sessions[address].pop(session_id, None)


@dataclass
class WordBucket:
    """Words one socket may send: ``rate`` a second on average, ``burst`` at once."""

    rate: float
    burst: int
    clock: Any = time.monotonic
    tokens: float = field(init=False)
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.last = float(self.burst), self.clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Shield:
    """ASGI middleware: refuses a Host that is not allowed (HTTP 400; a WebSocket is closed before
    its handshake completes) and adds SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = host_of(dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1"))
        if host not in self.allowed_hosts:
            await self.refuse(scope, receive, send, host)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    @staticmethod
    async def refuse(scope: Scope, receive: Receive, send: Send, host: str) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
            return
        body = f"host {host[:80]!r} is not allowed here (--allowed-hosts)\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
