"""What one visitor may do through the gateway, against a real server process and a real gateway
process (python -m wordstream.gateway), spoken to as a browser would: Host and Origin of the
page, then the caps of guard.py: frames, messages, sockets, sessions and words per second."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.helpers import gateway_stack

pytestmark = pytest.mark.slow  # a server process and a gateway process


@pytest.fixture
def gateway(tiny_models: dict[str, Path]) -> Iterator[tuple[int, int]]:
    """(gateway port, gateway pid) in front of a server process."""
    with gateway_stack(tiny_models["lstm"].parent) as (process, gateway_port, _):
        yield gateway_port, process.pid


def page_socket(port: int, origin: str | None = "") -> ClientConnection:
    """A WebSocket as the page at http://localhost:<port>/ opens it (``origin`` None: no Origin)."""
    chosen = f"http://localhost:{port}" if origin == "" else origin
    return connect(
        f"ws://localhost:{port}/ws", origin=Origin(chosen) if chosen else None, max_size=None, open_timeout=10
    )


def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return answer


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw_upgrade(port: int, host: str, origin: str | None) -> str:
    """The status line the gateway answers a WebSocket handshake with these Host and Origin."""
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_hosts_and_origins_a_browser_sends_are_checked(gateway: tuple[int, int]) -> None:
    """DNS rebinding (Host: evil.example, Origin to match) is refused; a socket without Origin is
    refused; the page's own Host and Origin are accepted; every path carries the headers."""
    port, _ = gateway
    assert " 101 " in raw_upgrade(port, f"localhost:{port}", f"http://localhost:{port}")
    assert " 403 " in raw_upgrade(port, f"evil.example:{port}", f"http://evil.example:{port}")
    assert " 403 " in raw_upgrade(port, f"localhost:{port}", None)
    assert " 403 " in raw_upgrade(port, f"localhost:{port}", "http://localhost:9999")  # another port's page
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    for path in ("/", "/static/app.js", "/static/style.css", "/models", "/healthz"):
        with urllib.request.urlopen(f"http://localhost:{port}{path}", timeout=10) as answer:
            headers = answer.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY", path


def test_a_huge_frame_closes_the_socket_before_it_is_buffered(gateway: tuple[int, int]) -> None:
    """A 12 MiB frame: the socket is closed (1009) and the process does not grow by it; a
    70,000-byte message (over --max-message-bytes, under the frame ceiling) gets an error answer
    on a socket that stays open."""
    port, pid = gateway
    with page_socket(port) as ws:
        answer = ask(ws, {"word": "x" * 70_000})
        assert answer["error"]["code"] == "INVALID_ARGUMENT" and "over the limit" in answer["error"]["message"]
        assert "opened" in ask(ws, {"open": {}})
    before = rss_bytes(pid)
    with page_socket(port) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.send("x" * (12 * 2**20))
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    grown = rss_bytes(pid) - before
    assert grown < 8 * 2**20, grown
    with page_socket(port) as ws:  # the gateway goes on
        assert "opened" in ask(ws, {"open": {}})


def test_sockets_and_sessions_per_address_are_capped(gateway: tuple[int, int]) -> None:
    """8 sockets from one address work, the 9th is refused; 32 live sessions, the 33rd is refused
    with an error answer; closing one makes room."""
    port, _ = gateway
    sockets = [page_socket(port) for _ in range(8)]
    try:
        with pytest.raises(InvalidStatus):
            page_socket(port)
        opened = [ask(sockets[n % 8], {"open": {}}) for n in range(32)]
        assert all("opened" in a for a in opened)
        refused = ask(sockets[0], {"open": {}})
        assert refused["error"]["code"] == "RESOURCE_EXHAUSTED" and "--max-sessions-per-client" in str(refused)
        last = opened[-1]["opened"]["session_id"]
        assert "opened" in ask(sockets[7], {"resume": last})  # a resume opens nothing new
        assert "closed" in ask(sockets[7], {"close": {}})
        assert "opened" in ask(sockets[0], {"open": {}})
    finally:
        for ws in sockets:
            ws.close()
    with page_socket(port) as ws:  # the sockets closed: room again for a socket (and a resume)
        assert "opened" in ask(ws, {"resume": opened[0]["opened"]["session_id"]})


def test_words_past_the_burst_get_an_error_and_the_socket_goes_on(gateway: tuple[int, int]) -> None:
    """300 words sent at once on one socket: the first 200 (the burst) are answered, some of the
    rest get RESOURCE_EXHAUSTED; a moment later words are answered again on the same socket."""
    port, _ = gateway
    with page_socket(port) as ws:
        assert "opened" in ask(ws, {"open": {}})
        for _ in range(300):
            ws.send(json.dumps({"word": "fine"}))
        answers = [json.loads(ws.recv(timeout=10)) for _ in range(300)]
        assert all("word" in a for a in answers[:200])
        refused = [a for a in answers if "error" in a]
        assert refused and all(a["error"]["code"] == "RESOURCE_EXHAUSTED" for a in refused)
        assert "words a second" in refused[0]["error"]["message"]
        time.sleep(0.5)
        assert "word" in ask(ws, {"word": "again"})


def test_messages_are_compressed_when_the_browser_offers_it_unless_turned_off(gateway: tuple[int, int]) -> None:
    """By default the gateway takes the page's permessage-deflate offer (under a third of the
    bytes); WORDSTREAM_WS_COMPRESSION=false (--no-ws-compression) declines it, and the page still works."""
    import os

    from tests.helpers import start_gateway

    def extensions(ws: ClientConnection) -> str | None:
        assert ws.response is not None
        return ws.response.headers.get("sec-websocket-extensions")

    port, _ = gateway
    with page_socket(port) as ws:
        assert "permessage-deflate" in (extensions(ws) or "")
        assert "opened" in ask(ws, {"open": {}})
    plain, plain_port = start_gateway("localhost:1", env={**os.environ, "WORDSTREAM_WS_COMPRESSION": "false"})
    try:
        with page_socket(plain_port) as ws:
            assert extensions(ws) is None
            assert "error" in ask(ws, {"word": "x"})  # answered (no session yet): the socket works
    finally:
        plain.terminate()
        plain.wait(timeout=10)
