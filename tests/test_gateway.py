"""The WebSocket gateway in process (Starlette's TestClient) against a real server on port 0."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.helpers import TEXT, MakeServer, ServerThread, offline_prefix_probs, offline_steps
from wordstream.client import AsyncClient
from wordstream.client import types as t
from wordstream.gateway.app import create_app, floats_text, word_text
from wordstream.gateway.guard import Limits

PAGE = "http://localhost:8080"  # where a browser found the page
BROWSER = {"origin": PAGE}  # what its socket sends
SOCKET = "ws://localhost:8080/ws"


def gateway(target: str, multiplex_streams: int = 0, reconnect_timeout: float = 10, **limits: Any) -> TestClient:
    """The app in process, asked as a browser on its page would: Host localhost:8080 (the app sees
    that as its own address), and its sockets opened with that page's Origin (BROWSER)."""
    client = lambda: AsyncClient(target, reconnect_timeout=reconnect_timeout)  # noqa: E731
    app = create_app(client, Limits(**limits), multiplex_streams)
    return TestClient(app, base_url=PAGE)


# How the gateway carries the sessions: a gRPC stream each, or on two Multiplex streams.
CARRIERS = pytest.mark.parametrize("streams", [0, 2], ids=["own-streams", "multiplex"])


def probs(answer: dict[str, Any]) -> list[float]:
    return list(answer["word"]["probabilities"].values())


@CARRIERS
def test_open_words_rewind_reset_and_close_mirror_the_grpc_answers(
    server: ServerThread, tiny_models: dict[str, Path], streams: int
) -> None:
    with gateway(server.target, streams) as http, http.websocket_connect(SOCKET, headers=BROWSER) as ws:
        ws.send_json({"open": {}})
        opened = ws.receive_json()["opened"]
        assert opened["model"] == "tiny-lstm" and opened["labels"] == ["negative", "positive"]
        assert opened["resumed"] is False and opened["words"] == [] and opened["history"] == []
        answers = []
        for word in TEXT[:6]:
            ws.send_json({"word": word})
            answers.append(ws.receive_json())
        offline = offline_prefix_probs(tiny_models["lstm"], TEXT[:6])
        for answer, expected, word in zip(answers, offline, TEXT):
            assert answer["word"]["word"] == word and answer["word"]["session_id"] == opened["session_id"]
            assert np.allclose(probs(answer), expected, atol=1e-5)
            assert answer["word"]["label"] == opened["labels"][int(np.argmax(expected))]
        steps = [s for a in answers for s in a["word"]["steps"]]
        exact = offline_steps(tiny_models["lstm"], TEXT[:6])
        assert len(steps) == answers[-1]["word"]["history_length"] == len(exact)
        for step, (p, state) in zip(steps, exact):
            assert np.allclose(list(step["probabilities"].values()), p, atol=1e-5)
            assert all(np.allclose(step["state"][name], value, atol=1e-5) for name, value in state.items())
        ws.send_json({"rewind": 2})
        rewound = ws.receive_json()["rewound"]
        assert rewound["words"] == 4 and rewound["steps"] == len(offline_steps(tiny_models["lstm"], TEXT[:4]))
        ws.send_json({"word": TEXT[4]})
        assert np.allclose(probs(ws.receive_json()), offline[4], atol=1e-5)
        ws.send_json({"reset": {}})
        assert ws.receive_json()["rewound"] == {"session_id": opened["session_id"], "words": 0, "steps": 0}
        ws.send_json({"close": {}})
        assert ws.receive_json() == {"closed": {"session_id": opened["session_id"]}}
        assert not server.service.store.has(opened["session_id"])


def test_a_word_answer_carries_the_float32_values_of_the_grpc_answer_exactly(server: ServerThread) -> None:
    """The JSON writes 9 significant digits, not a double's 17: read back as float32, every value is
    the gRPC answer's own, and the word's state (written once for the word, once for its last step)
    is the same in both places."""

    async def typed() -> list[t.WordResult]:
        async with AsyncClient(server.target) as client, client.session() as session:
            return [await session.push(word) for word in TEXT[:5]]

    for result in asyncio.run(typed()):
        answer = json.loads(word_text(result))["word"]
        for name, layers in result.state.items():
            assert np.array_equal(np.array(answer["state"][name], np.float32), np.array(layers, np.float32))
            assert np.array_equal(
                np.array(answer["steps"][-1]["state"][name], np.float32), np.array(layers, np.float32)
            )
        for step, written in zip(result.steps, answer["steps"]):
            assert written["probabilities"] == step.output.probabilities and written["word"] == step.word
        assert set(answer) == {
            "session_id", "word_index", "word", "tokens", "label", "probabilities", "state", "history_length", "steps"
        }  # fmt: skip


def test_floats_are_written_so_that_float32_reads_them_back_bit_for_bit() -> None:
    values = np.random.default_rng(0).standard_normal(2000).astype(np.float32) * np.float32(
        10.0
    ) ** np.random.default_rng(1).integers(-30, 30, 2000).astype(np.float32)
    edge = np.array([0.0, -0.0, 1.0, 1e-45, 3.4028235e38, -1.1754944e-38], dtype=np.float32)
    for chunk in (values, edge):
        read = np.array(json.loads(floats_text(tuple(float(v) for v in chunk))), dtype=np.float32)
        assert read.tobytes() == chunk.tobytes()
    assert floats_text((1.5, float("nan"), float("inf"))) == "[1.5,NaN,Infinity]"  # as json.dumps writes them


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("{not json", "not JSON"),
        ('["word", "x"]', "exactly one of"),
        ('{"word": "a", "rewind": 1}', "exactly one of"),
        ('{"shout": "hey"}', "unknown kind 'shout'"),
        ('{"word": 3}', "word takes a string"),
        ('{"rewind": "2"}', "rewind takes a whole number"),
        ('{"rewind": true}', "rewind takes a whole number"),
        ('{"open": "lstm"}', "open takes an object"),
        ('{"reset": []}', "reset takes an empty object"),
        ('{"word": "' + "x" * 70_000 + '"}', "over the limit of 65536"),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays_open(
    server: ServerThread, message: str, complaint: str
) -> None:
    with gateway(server.target) as http, http.websocket_connect(SOCKET, headers=BROWSER) as ws:
        ws.send_json({"open": {}})
        ws.receive_json()
        ws.send_text(message)
        error = ws.receive_json()["error"]
        assert error["code"] == "INVALID_ARGUMENT" and complaint in error["message"], error
        ws.send_json({"word": "good"})  # the socket and the session carry on
        assert ws.receive_json()["word"]["word_index"] == 0


@CARRIERS
def test_errors_from_the_server_are_answered_with_their_code(server: ServerThread, streams: int) -> None:
    with gateway(server.target, streams) as http, http.websocket_connect(SOCKET, headers=BROWSER) as ws:
        ws.send_json({"word": "early"})
        assert "open or resume a session first" in ws.receive_json()["error"]["message"]
        ws.send_bytes(b"\x00\x01")
        assert "not binary" in ws.receive_json()["error"]["message"]
        ws.send_json({"open": {"model": "no-such-model"}})
        assert ws.receive_json()["error"]["code"] == "NOT_FOUND"
        ws.send_json({"resume": "x" * 30})
        assert ws.receive_json()["error"]["code"] == "NOT_FOUND"
        ws.send_json({"open": {}})
        ws.receive_json()
        ws.send_json({"word": "two words"})
        assert ws.receive_json()["error"]["code"] == "INVALID_ARGUMENT"
        ws.send_json({"rewind": 5})
        assert "cannot rewind 5 words" in ws.receive_json()["error"]["message"]


@CARRIERS
def test_a_page_that_reconnects_resumes_its_session_by_id(
    server: ServerThread, tiny_models: dict[str, Path], streams: int
) -> None:
    with gateway(server.target, streams) as http:
        with http.websocket_connect(SOCKET, headers=BROWSER) as ws:
            ws.send_json({"open": {}})
            session_id = ws.receive_json()["opened"]["session_id"]
            for word in TEXT[:3]:
                ws.send_json({"word": word})
                ws.receive_json()
        # The socket is gone; the session stays on the server, detached.
        with http.websocket_connect(SOCKET, headers=BROWSER) as ws:
            ws.send_json({"resume": session_id})
            opened = ws.receive_json()["opened"]
            assert opened["resumed"] and opened["words"] == TEXT[:3]
            assert len(opened["history"]) == len(offline_steps(tiny_models["lstm"], TEXT[:3]))
            ws.send_json({"word": TEXT[3]})
            answer = ws.receive_json()
            assert np.allclose(probs(answer), offline_prefix_probs(tiny_models["lstm"], TEXT[:4])[-1], atol=1e-5)


@CARRIERS
def test_a_server_restart_under_an_open_socket_loses_no_word(
    make_server: MakeServer, tiny_models: dict[str, Path], streams: int
) -> None:
    """No --state-dir: the restarted server has lost the session; the gateway's client replays it
    into a new one, says so, and the next answer is what an uninterrupted session gives."""
    first: ServerThread = make_server()
    with gateway(first.target, streams) as http, http.websocket_connect(SOCKET, headers=BROWSER) as ws:
        ws.send_json({"open": {}})
        old_id = ws.receive_json()["opened"]["session_id"]
        for word in TEXT[:4]:
            ws.send_json({"word": word})
            ws.receive_json()
        first.stop()
        make_server(port=first.port)
        ws.send_json({"word": TEXT[4]})
        replayed = ws.receive_json()["replayed"]
        assert replayed["from"] == old_id and replayed["words"] == 4 and replayed["session_id"] != old_id
        answer = ws.receive_json()
        assert answer["word"]["session_id"] == replayed["session_id"] and answer["word"]["word_index"] == 4
        assert np.allclose(probs(answer), offline_prefix_probs(tiny_models["lstm"], TEXT[:5])[-1], atol=1e-5)


@CARRIERS
def test_a_server_away_longer_than_the_reconnect_timeout_then_back_loses_no_word(
    make_server: MakeServer, tiny_models: dict[str, Path], streams: int
) -> None:
    """The server is down for longer than the gateway's client waits: the page's word is answered
    UNAVAILABLE. Once a server is back (without a store: the session was lost) the page's next
    word is answered, the session replayed, on either carrier (the Multiplex stream recovers)."""
    first: ServerThread = make_server()
    with (
        gateway(first.target, streams, reconnect_timeout=1) as http,
        http.websocket_connect(SOCKET, headers=BROWSER) as ws,
    ):
        ws.send_json({"open": {}})
        old_id = ws.receive_json()["opened"]["session_id"]
        for word in TEXT[:3]:
            ws.send_json({"word": word})
            ws.receive_json()
        first.stop()
        ws.send_json({"word": TEXT[3]})
        assert ws.receive_json()["error"]["code"] == "UNAVAILABLE"
        make_server(port=first.port)
        ws.send_json({"word": TEXT[3]})
        replayed = ws.receive_json()["replayed"]
        assert replayed["from"] == old_id and replayed["words"] == 3
        answer = ws.receive_json()["word"]
        assert answer["session_id"] == replayed["session_id"] and answer["word_index"] == 3
        assert np.allclose(
            list(answer["probabilities"].values()), offline_prefix_probs(tiny_models["lstm"], TEXT[:4])[-1], atol=1e-5
        )


def test_page_health_and_models(server: ServerThread) -> None:
    with gateway(server.target) as http:
        page = http.get("/")
        assert page.status_code == 200 and 'data-testid="typing-input"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for hook in ("label", "probability", "word-count", "state-heatmap"):
            assert f'data-testid="{hook}"' in page.text + http.get("/static/app.js").text
        assert http.get("/static/app.js").status_code == 200 and http.get("/static/style.css").status_code == 200
        assert http.get("/healthz").json() == {"status": "ok", "server": "SERVING"}
        models = http.get("/models").json()
        assert models["default"] == "tiny-lstm" and "tiny-gru" in [m["name"] for m in models["models"]]
        server.stop()
        down = http.get("/healthz")
        assert down.status_code == 503 and down.json()["status"] == "unavailable"


def test_a_page_from_another_origin_cannot_use_the_socket(server: ServerThread) -> None:
    with gateway(server.target, allowed_origins=frozenset({"https://ok.example"})) as http:
        with (
            pytest.raises(WebSocketDisconnect) as info,
            http.websocket_connect(SOCKET, headers={"origin": "https://evil.example"}) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1008
        for origin in (PAGE, "https://ok.example"):
            with http.websocket_connect(SOCKET, headers={"origin": origin}) as ws:
                ws.send_json({"open": {}})
                assert "opened" in ws.receive_json()


def test_the_client_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() -> None:
    from wordstream.gateway.guard import client_address, host_of, networks

    def scope(peer: str, forwarded: str = "") -> dict[str, Any]:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 5000), "headers": headers}

    proxies = networks("10.0.0.0/8, 192.168.1.7")
    assert client_address(scope("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"  # not a proxy: its own
    assert client_address(scope("10.1.2.3", "1.2.3.4"), ()) == "10.1.2.3"  # no proxies trusted (the default)
    assert client_address(scope("10.1.2.3", "1.2.3.4, 10.9.9.9"), proxies) == "1.2.3.4"  # the last untrusted hop
    assert client_address(scope("192.168.1.7", "6.6.6.6, 1.2.3.4"), proxies) == "1.2.3.4"  # not a spoofed first
    assert client_address(scope("10.1.2.3"), proxies) == "10.1.2.3"
    assert [host_of(h) for h in ("LocalHost:8080", "[::1]:8080", "127.0.0.1", "[::1]")] == [
        "localhost",
        "[::1]",
        "127.0.0.1",
        "[::1]",
    ]
