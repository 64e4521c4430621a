"""Faults: a client killed mid-word, a server killed with SIGKILL. Real processes, real channels."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import MakeServer, ServerThread, Stream, poll, start_server_process
from wordstream.client import Client, Session
from wordstream.v1 import wordstream_pb2 as pb

pytestmark = pytest.mark.slow  # client and server processes, killed

ROOT = Path(__file__).resolve().parent.parent

TYPIST = """
import sys, json
from wordstream.client import Client
client = Client(sys.argv[1])
sessions = [client.session() for _ in range(20)]
for s in sessions:
    s.open()
print(json.dumps([s.id for s in sessions]), flush=True)
while True:
    for s in sessions:
        s.push("fine")
"""


def test_a_killed_client_leaves_resumable_sessions_that_expire_without_a_leak(make_server: MakeServer) -> None:
    server: ServerThread = make_server(idle_timeout=1.5, reap_interval=0.1)
    bank = server.service.store.bank(server.service.models["tiny-lstm"])
    in_use_before = bank.in_use
    typist = subprocess.Popen(
        [sys.executable, "-c", TYPIST, server.target], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    ids = json.loads(typist.stdout.readline() if typist.stdout else "[]")
    poll(lambda: all(s.steps >= 3 for s in server.service.store.sessions()), "every session to have words")
    typist.send_signal(signal.SIGKILL)  # mid-typing: words are in flight
    typist.wait()
    assert len(server.service.store) == 20
    with Client(server.target) as client:  # still resumable, and it continues where it was
        words = client.get_session(ids[0])["words"]
        resumed = client.resume(ids[0])
        poll_open(resumed)
        assert resumed.push("film").word_index == words
        resumed.close()
    poll(lambda: len(server.service.store) == 0, "every session to expire")
    assert server.service.store.total_bytes == 0
    assert bank.in_use == in_use_before and not bank.busy


def start_server(models: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    return start_server_process(models, "--default-model", "tiny-gru", port=port)


def test_a_server_killed_with_sigkill_loses_no_words(tiny_models: dict[str, Path]) -> None:
    models = tiny_models["gru"].parent
    first, port = start_server(models)
    second = None
    try:
        replays: list[tuple[str, str, int]] = []
        with Client(f"localhost:{port}") as client:
            session = client.session(on_replay=lambda *a: replays.append(a))
            session.open()
            for word in "the film is great but dull".split():
                session.push(word)
            before = session.history
            first.send_signal(signal.SIGKILL)
            first.wait()
            second, _ = start_server(models, port)
            result = session.push("fun")
            assert len(replays) == 1 and replays[0][2] == 6
            assert session.history[:-1] == before and result.word_index == 6
            assert session.history == client.get_session(session.id)["history"]
            session.close()
        stream = Stream(f"localhost:{port}")  # the new server serves others as usual
        assert stream.send(open=pb.Open()).opened.model.name == "tiny-gru"
        stream.end()
    finally:
        first.kill()
        if second:
            second.kill()


def test_a_resumed_session_is_replayed_after_a_restart_with_its_own_words(tiny_models: dict[str, Path]) -> None:
    """client.resume(id) reads the session's words back from the server, so when the server is
    later restarted without its sessions, the replay sends the real words, not placeholders."""
    models = tiny_models["gru"].parent
    first, port = start_server(models)
    second = None
    target = f"localhost:{port}"
    words = "the film is great but".split()
    try:
        with Client(target) as typist:  # types, then leaves without closing the session
            session = typist.session()
            session.open()
            for word in words[:3]:
                session.push(word)
            session_id = session.id
        replays: list[tuple[str, str, int]] = []
        with Client(target) as client:
            resumed = client.resume(session_id, on_replay=lambda *a: replays.append(a))
            poll_open(resumed)
            assert resumed.words == words[:3]
            resumed.push(words[3])
            first.send_signal(signal.SIGKILL)
            first.wait()
            second, _ = start_server(models, port)
            result = resumed.push(words[4])
            assert len(replays) == 1 and replays[0][2] == 4 and result.word_index == 4
            with client.session() as fresh:  # an uninterrupted session of the same words
                expected = [fresh.push(w) for w in words]
            assert result.output == expected[-1].output
            assert [s.word for s in resumed.history] == words
            resumed.close()
    finally:
        first.kill()
        if second:
            second.kill()


def poll_open(session: Session, timeout: float = 10.0) -> None:
    """Open (resume) ``session``, retrying while the server has not yet noticed the old stream's end."""
    from wordstream.client import SessionBusy

    deadline = time.monotonic() + timeout
    while True:
        try:
            session.open()
            return
        except SessionBusy:
            assert time.monotonic() < deadline, f"session still attached to its old stream after {timeout} s"
            time.sleep(0.05)
